"""How well a risk reviewer judges the labelled text corpus (issue 29's benchmark and floor).

The corpus (``tests/corpus/screening/text_cases.jsonl``) is JSON lines, one case each:
``{"id", "field", "text", "expected": [terms], "note"}``; a case with expected terms is a
positive (the design names a protected mark), one without a negative (an innocent near-miss).
Each case becomes a design whose ``field`` holds ``text`` (the other fields empty) and is
reviewed once; a positive is caught when the review reaches ``flag_from`` (the deployment's
``SCREENING_RISK_LEVEL``), a negative is a false alarm when it does.

:class:`CorpusScore` has the shape the deny list's scoring uses (``corpus.py``, written beside
this one at the same time); the two are meant to be one.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import get_args

from shared.contract.events import ScreenedField
from shared.domain.screening.checks import DesignText, RiskLevel, RiskReviewer

_ORDER = list(RiskLevel)
# The fields a text case may fill (the image itself is not text).
CASE_FIELDS = frozenset(f for f in get_args(ScreenedField) if f != "image")


@dataclass(frozen=True)
class TextCase:
    """One labelled case of the text corpus."""

    id: str
    field: ScreenedField
    text: str
    expected: tuple[str, ...]
    note: str = ""

    def design(self) -> DesignText:
        """A design whose ``field`` holds the case's text."""
        body: dict[str, str] = {"title": "", "description": "", "prompt": ""}
        tags: tuple[str, ...] = ()
        image_text = None
        if self.field == "tags":
            tags = (self.text,)
        elif self.field == "image_text":
            image_text = self.text
        else:
            body[self.field] = self.text
        return DesignText(**body, tags=tags, image_text=image_text)


@dataclass(frozen=True)
class CorpusScore:
    """Case counts (a positive names a protected mark), their precision and recall, and what
    went wrong (one line per missed or falsely flagged case)."""

    tp: int
    fp: int
    fn: int
    tn: int
    precision: float
    recall: float
    misses: tuple[str, ...] = ()


def load_cases(path: Path) -> list[TextCase]:
    """The corpus's cases; a malformed line is a ValueError naming its line."""
    cases: list[TextCase] = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            raw = json.loads(line)
            field = raw["field"]
            if field not in CASE_FIELDS:
                raise ValueError(f"field {field!r} is not one of {sorted(CASE_FIELDS)}")
            expected = raw.get("expected") or []
            if not isinstance(expected, list) or not all(isinstance(t, str) for t in expected):
                raise ValueError("expected must be a list of terms")
            case = TextCase(
                id=str(raw["id"]),
                field=field,
                text=str(raw["text"]),
                expected=tuple(expected),
                note=str(raw.get("note", "")),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"{path}:{number}: {exc}") from None
        cases.append(case)
    return cases


def score(tp: int, fp: int, fn: int, tn: int, misses: list[str]) -> CorpusScore:
    """The counts with precision and recall (1.0 when nothing was flagged, or nothing was to
    be)."""
    return CorpusScore(
        tp=tp,
        fp=fp,
        fn=fn,
        tn=tn,
        precision=tp / (tp + fp) if tp + fp else 1.0,
        recall=tp / (tp + fn) if tp + fn else 1.0,
        misses=tuple(misses),
    )


async def score_risk_corpus(
    path: Path, reviewer: RiskReviewer, *, flag_from: RiskLevel = RiskLevel.MEDIUM
) -> CorpusScore:
    """Review every case of the corpus at ``path`` with ``reviewer``, one after the other (a
    benchmark of a real API should not burst), and score the reviews."""
    tp = fp = fn = tn = 0
    misses: list[str] = []
    threshold = _ORDER.index(flag_from)
    for case in load_cases(path):
        review = await reviewer.review_risk(case.design(), job_id=f"corpus-{case.id}")
        flagged = _ORDER.index(review.level) >= threshold
        found = ", ".join(f.term for f in review.findings) or "-"
        if case.expected and flagged:
            tp += 1
        elif case.expected:
            fn += 1
            misses.append(
                f"{case.id}: missed {', '.join(case.expected)} in {case.field} "
                f"(level {review.level.value}; {case.note})"
            )
        elif flagged:
            fp += 1
            misses.append(
                f"{case.id}: false alarm in {case.field} (level {review.level.value}: {found}; "
                f"{case.note})"
            )
        else:
            tn += 1
    return score(tp, fp, fn, tn, misses)
