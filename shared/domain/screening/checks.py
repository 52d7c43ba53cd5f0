"""What each screening check answers, and the interfaces the screener calls them through.

The screener (``services.generator.screening``) runs every check on a design and turns their
findings into :class:`shared.contract.events.ScreeningReason` under the deployment's policy.
Each check is small and testable on its own: the deny list is pure data and matching
(``shared.domain.screening.terms``), the others are Protocols with a real implementation in an
adapter and, for tests of the screener alone, an in-process one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

from shared.contract.events import ScreenedField, TokenCounts


@dataclass(frozen=True)
class TermHit:
    """A protected term found in a text: the deny list's entry and the text that matched it."""

    # The entry's canonical name ("Nike", "Mickey Mouse"): what the seller sees and extends.
    term: str
    # What kind of mark it is (brand, character, franchise, celebrity, team, league...).
    category: str
    # The words of the text that matched, as written there ("N1KE", "m i c k e y").
    found: str
    # Which field of the design it was found in.
    field: ScreenedField


@dataclass(frozen=True)
class DesignText:
    """The text of one design that screening reads: its listing copy, its prompt and what OCR
    read in the image (None: not read)."""

    title: str
    description: str
    tags: tuple[str, ...]
    prompt: str
    image_text: str | None = None

    def fields(self) -> list[tuple[ScreenedField, str]]:
        """Each field with its text (tags one by one, under ``tags``)."""
        out: list[tuple[ScreenedField, str]] = [
            ("title", self.title),
            ("description", self.description),
            ("prompt", self.prompt),
        ]
        out += [("tags", t) for t in self.tags]
        if self.image_text:
            out.append(("image_text", self.image_text))
        return out


class TermMatcher(Protocol):
    """The deny list: every protected term in a text (robust to case, punctuation, spacing,
    plurals and look-alike characters; innocent words that merely contain a term do not
    match)."""

    def find(self, text: str, field: ScreenedField) -> list[TermHit]: ...


class RiskLevel(StrEnum):
    """Claude's intellectual-property risk of a design's text."""

    NONE = "none"
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"


@dataclass(frozen=True)
class RiskFinding:
    """A term Claude considers a risk, and why (its words)."""

    term: str
    why: str
    field: ScreenedField | None = None


@dataclass(frozen=True)
class RiskReview:
    """Claude's structured answer: the risk level, the terms and why, and what it cost."""

    level: RiskLevel
    findings: tuple[RiskFinding, ...] = ()
    tokens: TokenCounts = field(default_factory=TokenCounts)


class RiskReviewer(Protocol):
    """Claude's review of a design's text (the real one: ``ClaudeClient.review_risk``)."""

    async def review_risk(self, text: DesignText, *, job_id: str) -> RiskReview: ...


class TextReader(Protocol):
    """OCR: the text rendered into an image (the real one: ``shared.adapters.ocr``)."""

    async def read_text(self, image: bytes) -> str: ...


@dataclass(frozen=True)
class UnsafeFinding:
    """What the classifier found unsafe in an image: its label and confidence (0-1)."""

    label: str
    score: float


class UnsafeClassifier(Protocol):
    """A local image classifier of adult or violent content (the real one:
    ``shared.adapters.unsafe``). Synchronous and CPU-bound: the screener runs it in a thread.
    Returns only the findings at or above its threshold."""

    def classify(self, image: bytes) -> list[UnsafeFinding]: ...
