"""The OCR corpus's images (made at test time by the ComfyUI simulator's renderer) and a small
matcher over the corpus's own expected terms, for scoring the reader before the real deny list
(shared.domain.screening.terms) is wired in."""

from __future__ import annotations

import re
from pathlib import Path

from shared.contract.events import ScreenedField
from shared.domain.screening.checks import TermHit
from shared.domain.screening.ocr_corpus import OcrCase, load_ocr_cases
from simulators.comfyui.render import render_png

CORPUS = Path(__file__).resolve().parents[1] / "corpus" / "screening" / "ocr_cases.jsonl"

# Digits written for the letters they look like (the evasions of the corpus).
_LOOKALIKE = str.maketrans("014$35@", "oiasesa")


def render_case(case: OcrCase) -> bytes:
    """The design the simulated ComfyUI renders for the case's prompt (as the generator asks)."""
    return render_png(
        case.prompt,
        case.seed,
        case.width,
        case.height,
        out_width=case.out_width,
        out_height=case.out_height,
    )


def _words(text: str) -> list[str]:
    # Look-alikes to letters, anything else to a blank; then single letters in a row are one
    # word ("N I K E", "J.U.S.T" -> "nike", "just").
    words = re.sub(r"[^a-z]+", " ", text.lower().translate(_LOOKALIKE)).split()
    out: list[str] = []
    run = ""
    for w in words:
        if len(w) == 1:
            run += w
            continue
        if run:
            out.append(run)
            run = ""
        out.append(w)
    return [*out, run] if run else out


class CorpusTermMatcher:
    """Finds the corpus's expected terms as whole words (a plural s allowed); not the deny list,
    just enough to score what the reader read."""

    def __init__(self, terms: list[str]) -> None:
        self._terms = {t: _words(t) for t in terms}

    @classmethod
    def of_corpus(cls, path: Path = CORPUS) -> CorpusTermMatcher:
        return cls(sorted({t for c in load_ocr_cases(path) for t in c.expected_terms}))

    def find(self, text: str, field: ScreenedField) -> list[TermHit]:
        words = _words(text)
        joined = " " + " ".join(words) + " "
        hits = []
        for term, parts in self._terms.items():
            phrase, squashed = " ".join(parts), "".join(parts)
            # As words ("star wars", "nikes"), or run together ("STARWARS": the reader joined
            # spaced letters into one word).
            if re.search(rf" {re.escape(phrase)}s? ", joined) or any(
                w in (squashed, squashed + "s") for w in words
            ):
                hits.append(TermHit(term=term, category="corpus", found=phrase, field=field))
        return hits
