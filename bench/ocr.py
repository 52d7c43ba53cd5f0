"""How well, and at what CPU cost, each way of reading designs reads the OCR corpus.

    python bench/ocr.py [--variants all|default] [--misses]

Renders every case of tests/corpus/screening/ocr_cases.jsonl with the ComfyUI simulator's
renderer (once, before anything is timed), then reads them all with each variant of the reader
(page segmentation mode, size read, passes), one at a time, and prints per variant the
character and word recall of the rendered text, the protected-text cases found (with the
corpus's own matcher; the deny list's is the screening benchmark's) and the CPU per design:
Tesseract's (its processes) and the preparation's (this process). These are the figures behind
the reader's defaults (shared/adapters/ocr.py).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.common import table
from shared.adapters.ocr import PASSES, PSM, READ_SIDE, TesseractReader
from shared.domain.screening.ocr_corpus import (
    load_ocr_cases,
    read_cases,
    score_readings,
    text_recall,
)
from tests.support.ocr_corpus import CORPUS, CorpusTermMatcher, render_case

# (mode, size, passes): the default first, then what it was measured against.
DEFAULT = (PSM, READ_SIDE, PASSES)
VARIANTS: list[tuple[int, int, tuple[str, ...]]] = [
    DEFAULT,
    (3, 1024, ("gray",)),
    (11, 800, ("gray",)),
    (11, 800, ("gray", "invert")),
    (11, 800, ("dark", "light")),
    (3, 800, PASSES),
    (12, 800, PASSES),
    (11, 600, PASSES),
    (11, 1024, PASSES),
]


def _cpu(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--variants", choices=["all", "default"], default="all")
    parser.add_argument("--misses", action="store_true", help="print what each variant missed")
    args = parser.parse_args()
    cases = load_ocr_cases(CORPUS)
    images = {case.id: render_case(case) for case in cases}
    matcher = CorpusTermMatcher.of_corpus()
    positives = sum(bool(c.expected_terms) for c in cases)
    rows = []
    for psm, side, passes in VARIANTS if args.variants == "all" else [DEFAULT]:
        reader = TesseractReader(concurrency=1, psm=psm, read_side=side, passes=passes)
        own, children = _cpu(resource.RUSAGE_SELF), _cpu(resource.RUSAGE_CHILDREN)
        readings = await read_cases(cases, reader, lambda case: images[case.id])
        own, children = _cpu(resource.RUSAGE_SELF) - own, _cpu(resource.RUSAGE_CHILDREN) - children
        recall, score = text_recall(readings), score_readings(readings, matcher)
        rows.append(
            [
                f"mode {psm}, {side} px, {'+'.join(passes)}",
                f"{recall.chars:.3f}",
                f"{recall.words:.3f}",
                f"{score.tp}/{positives}",
                f"{score.precision:.3f}",
                f"{children / len(cases) * 1000:.0f}",
                f"{own / len(cases) * 1000:.0f}",
            ]
        )
        if args.misses:
            print(f"{rows[-1][0]}:", *recall.misses, *score.misses, sep="\n  ")
    header = ["variant", "char recall", "word recall", "found", "precision", "tess ms", "prep ms"]
    print(table(f"OCR corpus: {len(cases)} designs, CPU per design", header, rows))


if __name__ == "__main__":
    asyncio.run(main())
