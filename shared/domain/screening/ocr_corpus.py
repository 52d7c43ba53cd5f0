"""The OCR corpus (tests/corpus/screening/ocr_cases.jsonl): designs with text rendered into
them, read back by a :class:`TextReader` and checked by a :class:`TermMatcher`.

Two figures: how much of the rendered text the reader found (character and word recall; the
reader's own quality), and the rendered-text check's precision and recall on the cases (reader
and matcher together; what screening gets). The images are made from each case by a ``render``
function the caller gives (the tests and the benchmark: the ComfyUI simulator's renderer, which
this layer may not import), so no image is kept in git.
"""

from __future__ import annotations

import asyncio
import difflib
import json
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from shared.domain.screening.checks import TermMatcher, TextReader
from shared.domain.screening.corpus import Case, CorpusScore, score

_FIELDS = {"id", "prompt", "text", "expected_terms", "note"}
_SIZES = ("seed", "width", "height", "out_width", "out_height")
_ALNUM = re.compile(r"[^0-9A-Z]+")


@dataclass(frozen=True)
class OcrCase:
    """One design: the prompt the generator sends (its quoted text is what gets rendered), that
    text, the protected terms in it (none: innocent), why the case is there, and the render's
    seed and sizes (out_*: the upscaled print-size image, when it is one)."""

    id: str
    prompt: str
    text: str
    expected_terms: tuple[str, ...]
    note: str
    seed: int = 1
    width: int = 1024
    height: int = 1024
    out_width: int | None = None
    out_height: int | None = None


@dataclass(frozen=True)
class OcrReading:
    """What the reader read in one case's image, and how long it took (wall seconds)."""

    case: OcrCase
    read: str
    seconds: float


@dataclass(frozen=True)
class TextRecall:
    """How much of the rendered text the reader found, over the cases with text: characters
    (letters and digits in order) and words (each rendered word among the words read)."""

    chars: float
    words: float
    misses: tuple[str, ...]


def load_ocr_cases(path: Path) -> list[OcrCase]:
    """The corpus's cases, one JSON object a line; a malformed line is a ValueError naming it."""
    cases: list[OcrCase] = []
    seen: set[str] = set()
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        where = f"{path.name}:{number}"
        try:
            raw = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{where}: not JSON ({exc})") from exc
        if not isinstance(raw, dict) or not raw.keys() >= _FIELDS:
            raise ValueError(f"{where}: a case needs {sorted(_FIELDS)}")
        if unknown := raw.keys() - _FIELDS - set(_SIZES):
            raise ValueError(f"{where}: unknown fields {sorted(unknown)}")
        terms = raw["expected_terms"]
        strings = [raw["id"], raw["prompt"], raw["text"], raw["note"]]
        if not all(isinstance(v, str) for v in strings) or not isinstance(terms, list):
            raise ValueError(f"{where}: id, prompt, text, note are strings, expected_terms a list")
        if not all(isinstance(t, str) and t for t in terms):
            raise ValueError(f"{where}: expected_terms are non-empty strings")
        sizes = {k: raw[k] for k in _SIZES if k in raw}
        if not all(isinstance(v, int) and v > 0 for v in sizes.values()):
            raise ValueError(f"{where}: {', '.join(_SIZES)} are positive integers")
        if raw["id"] in seen:
            raise ValueError(f"{where}: id {raw['id']!r} twice")
        seen.add(raw["id"])
        cases.append(
            OcrCase(
                id=raw["id"],
                prompt=raw["prompt"],
                text=raw["text"],
                expected_terms=tuple(terms),
                note=raw["note"],
                **sizes,
            )
        )
    return cases


async def read_cases(
    cases: Sequence[OcrCase],
    reader: TextReader,
    render: Callable[[OcrCase], bytes],
    *,
    parallel: int = 1,
) -> list[OcrReading]:
    """Each case's image rendered and read, ``parallel`` at a time (1: each timing its own)."""
    slots = asyncio.Semaphore(parallel)

    async def one(case: OcrCase) -> OcrReading:
        async with slots:
            image = await asyncio.to_thread(render, case)
            started = time.perf_counter()
            read = await reader.read_text(image)
            return OcrReading(case, read, time.perf_counter() - started)

    return list(await asyncio.gather(*(one(c) for c in cases)))


def _alnum(text: str) -> str:
    return _ALNUM.sub("", text.upper())


def _words(text: str) -> list[str]:
    """The words of ``text`` in letters and digits, a run of single letters one word (spaced
    letters, "N I K E", count as the word they spell, however the reader spaced them)."""
    out: list[str] = []
    run = ""
    for word in (_alnum(w) for w in text.split()):
        if len(word) == 1:
            run += word
            continue
        if run:
            out.append(run)
            run = ""
        if word:
            out.append(word)
    return [*out, run] if run else out


def text_recall(readings: Sequence[OcrReading]) -> TextRecall:
    """Character and word recall of the rendered text over the cases that have some."""
    chars = found_chars = words = found_words = 0
    misses = []
    for r in readings:
        want_words = _words(r.case.text)
        if not want_words:
            continue
        read_words = set(_words(r.read))
        want, got = "".join(want_words), _alnum(r.read)
        matched = sum(
            b.size for b in difflib.SequenceMatcher(None, want, got).get_matching_blocks()
        )
        hit_words = sum(w in read_words for w in want_words)
        chars, found_chars = chars + len(want), found_chars + matched
        words, found_words = words + len(want_words), found_words + hit_words
        if hit_words < len(want_words):
            misses.append(f"{r.case.id} ({r.case.note}): rendered {r.case.text!r}, read {r.read!r}")
    return TextRecall(
        chars=found_chars / chars if chars else 1.0,
        words=found_words / words if words else 1.0,
        misses=tuple(misses),
    )


def score_readings(readings: Sequence[OcrReading], matcher: TermMatcher) -> CorpusScore:
    """The rendered-text check on the readings: a case with expected terms is a positive, one
    the matcher finds any term in is flagged. (A flagged positive counts as found even when the
    term's name differs from the case's: deny lists name entries their own way; the miss lines
    show what was found.)"""
    cases: list[Case] = []
    for r in readings:
        hits = matcher.find(r.read, "image_text") if r.read else []
        found = sorted({h.term for h in hits})
        expected = list(r.case.expected_terms)
        why = (
            f"{r.case.note}: expected {expected} in {r.case.text!r}, read {r.read!r}, found {found}"
        )
        cases.append((r.case.id, bool(expected), bool(hits), why))
    return score(cases)


async def score_ocr_corpus(
    path: Path,
    reader: TextReader,
    matcher: TermMatcher,
    render: Callable[[OcrCase], bytes],
) -> CorpusScore:
    """The rendered-text check's score on the corpus at ``path`` (``render`` makes each case's
    image: ``tests.support.ocr_corpus.render_case`` for the simulator's designs)."""
    readings = await read_cases(load_ocr_cases(path), reader, render)
    return score_readings(readings, matcher)
