"""The OCR corpus: its cases are well formed, its scoring counts what it should, and Tesseract
on the simulator's designs reads enough of it (floors asserted, figures printed)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from shared.adapters.ocr import TesseractReader, tesseract_available
from shared.domain.screening.ocr_corpus import (
    OcrCase,
    OcrReading,
    load_ocr_cases,
    read_cases,
    score_ocr_corpus,
    score_readings,
    text_recall,
)
from simulators.comfyui.render import printed_text
from tests.support.ocr_corpus import CORPUS, CorpusTermMatcher, render_case

# Measured (gray + dark + light passes, 800 px, sparse text): chars 0.975, words 0.92, check
# precision 1.0 and recall 0.875 (35 of 40). The floors leave room for Tesseract's own drift
# between Debian releases, not for a reader that reads half as much.
FLOOR_CHAR_RECALL = 0.93
FLOOR_WORD_RECALL = 0.85
FLOOR_PRECISION = 0.95
FLOOR_RECALL = 0.8


def test_the_corpus_is_what_the_issue_asks() -> None:
    cases = load_ocr_cases(CORPUS)
    assert len(cases) >= 40
    kinds = {c.note.split(":")[0] for c in cases}
    assert kinds == {"protected", "evasion", "innocent"}
    assert sum(bool(c.expected_terms) for c in cases) >= 25
    assert sum(not c.expected_terms for c in cases) >= 15
    for case in cases:
        # The text is what the simulator prints for the prompt (quoted, one line per quote).
        assert " ".join(printed_text(case.prompt)) == case.text, case.id
    # Sizes: small renders, wide ones and print-size upscales among them.
    assert {(c.width, c.height) for c in cases} >= {(512, 512), (1024, 512), (1024, 1024)}
    assert any(c.out_width for c in cases)
    assert any("small" in c.prompt for c in cases) and any("busy" in c.prompt for c in cases)


@pytest.mark.parametrize(
    ("line", "error"),
    [
        ("{", "not JSON"),
        ('{"id": "a"}', "a case needs"),
        ('{"id": "a", "prompt": "", "text": "", "note": "", "expected_terms": "Nike"}', "a list"),
        ('{"id": "a", "prompt": "", "text": "", "note": "", "expected_terms": [], "x": 1}', "x"),
        (
            '{"id": "a", "prompt": "", "text": "", "note": "", "expected_terms": [], "seed": -1}',
            "positive",
        ),
    ],
)
def test_a_malformed_case_is_named(tmp_path: Path, line: str, error: str) -> None:
    path = tmp_path / "cases.jsonl"
    path.write_text(f"\n{line}\n")
    with pytest.raises(ValueError, match=rf"cases.jsonl:2: .*{error}"):
        load_ocr_cases(path)


def test_a_case_id_twice_is_refused(tmp_path: Path) -> None:
    case = {"id": "a", "prompt": "p", "text": "", "note": "n", "expected_terms": []}
    (tmp_path / "c.jsonl").write_text(json.dumps(case) + "\n" + json.dumps(case) + "\n")
    with pytest.raises(ValueError, match="id 'a' twice"):
        load_ocr_cases(tmp_path / "c.jsonl")


def case(id: str, text: str, *terms: str) -> OcrCase:
    return OcrCase(id=id, prompt=f'"{text}"', text=text, expected_terms=terms, note="t")


def test_scoring_counts_each_outcome_and_names_the_misses() -> None:
    matcher = CorpusTermMatcher(["Nike", "Star Wars"])
    readings = [
        OcrReading(case("tp", "N I K E", "Nike"), "NIKE", 0.1),
        OcrReading(case("fn", "STAR WARS", "Star Wars"), "STAR WAKS", 0.1),
        OcrReading(case("fp", "STAR WARD"), "STAR WARS", 0.1),
        OcrReading(case("tn", "STAY WILD"), "STAY WILD", 0.1),
        OcrReading(case("tn2", "LAKE LIFE"), "", 0.1),
    ]
    score = score_readings(readings, matcher)
    assert (score.tp, score.fp, score.fn, score.tn) == (1, 1, 1, 2)
    assert score.precision == score.recall == 0.5
    assert [(m.kind, m.case_id) for m in score.misses] == [
        ("false_negative", "fn"),
        ("false_positive", "fp"),
    ]
    recall = text_recall(readings)
    # Spaced letters read joined are the word; "WAKS" is not WARS, nor "WARS" WARD.
    assert recall.words == pytest.approx(5 / 9)
    assert recall.chars == pytest.approx(26 / 36)  # one letter off twice, one line unread
    assert [m.split()[0] for m in recall.misses] == ["fn", "fp", "tn2"]


def test_the_corpus_matcher_finds_the_evasions_not_the_near_misses() -> None:
    matcher = CorpusTermMatcher.of_corpus()
    for text, term in [
        ("N1KES", "Nike"),
        ("J.U.S.T D.O I.T", "Just Do It"),
        ("STARWARS", "Star Wars"),
        ("i love mickey m0use", "Mickey Mouse"),
    ]:
        assert [h.term for h in matcher.find(text, "image_text")] == [term], text
    for text in ["JUST DO YOUR BEST", "LAKE LIFE", "CHANNEL SURFER", "STAR GAZER", "MOUSE TRAP"]:
        assert matcher.find(text, "image_text") == [], text


@pytest.mark.skipif(
    not tesseract_available(),
    reason="no tesseract with English data (Debian's tesseract-ocr, tesseract-ocr-eng: "
    "scripts/bootstrap.sh installs them as root)",
)
async def test_tesseract_reads_the_corpus_above_its_floors(
    capsys: pytest.CaptureFixture[str],
) -> None:
    cases = load_ocr_cases(CORPUS)
    reader = TesseractReader()
    readings = await read_cases(cases, reader, render_case, parallel=reader.concurrency)
    recall = text_recall(readings)
    score = score_readings(readings, CorpusTermMatcher.of_corpus())
    with capsys.disabled():
        print(
            f"\nOCR corpus ({len(cases)} cases): char recall {recall.chars:.3f}, word recall "
            f"{recall.words:.3f}; rendered-text check with the corpus matcher: precision "
            f"{score.precision:.3f} recall {score.recall:.3f} (tp {score.tp} fp {score.fp} "
            f"fn {score.fn} tn {score.tn})"
        )
        for miss in score.misses:
            print("  ", miss)
    assert recall.chars >= FLOOR_CHAR_RECALL, recall.misses
    assert recall.words >= FLOOR_WORD_RECALL, recall.misses
    assert score.precision >= FLOOR_PRECISION, score.misses
    assert score.recall >= FLOOR_RECALL, score.misses
    # The one-call form the benchmark uses scores the same (fed what was read, not reading
    # everything twice).
    again = await score_ocr_corpus(
        CORPUS, _Replay(readings), CorpusTermMatcher.of_corpus(), render_case
    )
    assert again == score


class _Replay:
    """A reader answering what the real one read, in order (the one-call form, without
    reading everything twice)."""

    def __init__(self, readings: list[OcrReading]) -> None:
        self._reads = iter(r.read for r in readings)

    async def read_text(self, image: bytes) -> str:
        return next(self._reads)
