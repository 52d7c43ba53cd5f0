"""How well a risk reviewer judges the labelled text corpus (issue 29's benchmark and floor).

The corpus is the deny list's (``tests/corpus/screening/text_cases.jsonl``, read by
:func:`shared.domain.screening.corpus.load_text_cases`); a case with expected terms is a
positive (the design names a protected mark), one without a negative (an innocent near-miss).
Each case becomes a design whose ``field`` holds ``text`` (the other fields empty) and is
reviewed once; a positive is caught when the review reaches ``flag_from`` (the deployment's
``SCREENING_RISK_LEVEL``), a negative is a false alarm when it does. Scored like every check
(:func:`shared.domain.screening.corpus.score`).
"""

from __future__ import annotations

from pathlib import Path

from shared.domain.screening.checks import DesignText, RiskLevel, RiskReviewer
from shared.domain.screening.corpus import Case, CorpusScore, TextCase, load_text_cases, score

_ORDER = list(RiskLevel)


def design_of(case: TextCase) -> DesignText:
    """A design whose ``field`` holds the case's text."""
    body: dict[str, str] = {"title": "", "description": "", "prompt": ""}
    tags: tuple[str, ...] = ()
    image_text = None
    if case.field == "tags":
        tags = (case.text,)
    elif case.field == "image_text":
        image_text = case.text
    elif case.field != "image":
        body[case.field] = case.text
    return DesignText(**body, tags=tags, image_text=image_text)


async def score_risk_corpus(
    path: Path, reviewer: RiskReviewer, *, flag_from: RiskLevel = RiskLevel.MEDIUM
) -> CorpusScore:
    """Review every case of the corpus at ``path`` with ``reviewer``, one after the other (a
    benchmark of a real API should not burst), and score the reviews."""
    threshold = _ORDER.index(flag_from)
    cases: list[Case] = []
    for case in load_text_cases(path):
        review = await reviewer.review_risk(design_of(case), job_id=f"corpus-{case.id}")
        flagged = _ORDER.index(review.level) >= threshold
        found = ", ".join(f.term for f in review.findings) or "-"
        why = (
            f"expected {', '.join(case.expected) or 'nothing'} in {case.field}, "
            f"level {review.level.value} ({found}); {case.note}"
        )
        cases.append((case.id, bool(case.expected), flagged, why))
    return score(cases)
