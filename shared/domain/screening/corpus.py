"""Scoring a screening check against a labelled corpus: precision, recall and the cases it missed.

Every check is scored the same way, so the benchmark (``bench/screening.py``) and the tests read
one shape: a case is ``(id, expected_positive, predicted_positive)``, optionally with a fourth
item saying why (the corpus's note, or what the check found instead), and :func:`score` counts
them. Each check's own corpus loader (:func:`score_text_corpus` for the deny list) turns its
cases into that shape.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from shared.contract.events import ScreenedField
from shared.domain.screening.checks import TermMatcher
from shared.platform.errors import ConfigError

Case = tuple[str, bool, bool] | tuple[str, bool, bool, str]


@dataclass(frozen=True)
class Miss:
    """A case the check got wrong: its id, which way, and why (the corpus's note or the
    difference between what was expected and what was found)."""

    case_id: str
    kind: Literal["false_positive", "false_negative"]
    why: str = ""

    def __str__(self) -> str:
        return f"{self.case_id} ({self.kind.replace('_', ' ')}): {self.why}"


@dataclass(frozen=True)
class CorpusScore:
    """A check's counts over a corpus, with precision and recall and every miss."""

    tp: int
    fp: int
    fn: int
    tn: int
    misses: tuple[Miss, ...] = ()

    @property
    def total(self) -> int:
        return self.tp + self.fp + self.fn + self.tn

    @property
    def precision(self) -> float:
        # Nothing flagged means nothing flagged wrongly: 1.0, so an all-innocent corpus does not
        # read as a failing check.
        flagged = self.tp + self.fp
        return self.tp / flagged if flagged else 1.0

    @property
    def recall(self) -> float:
        # No positive case: nothing could be missed.
        positives = self.tp + self.fn
        return self.tp / positives if positives else 1.0

    def summary(self) -> str:
        """One line for the benchmark and the tests' output."""
        return (
            f"cases={self.total} tp={self.tp} fp={self.fp} fn={self.fn} tn={self.tn} "
            f"precision={self.precision:.3f} recall={self.recall:.3f}"
        )


def score(cases: Iterable[Case]) -> CorpusScore:
    """Count ``(id, expected_positive, predicted_positive[, why])`` cases."""
    tp = fp = fn = tn = 0
    misses: list[Miss] = []
    for case in cases:
        case_id, expected, predicted = case[0], case[1], case[2]
        why = case[3] if len(case) > 3 else ""
        if expected and predicted:
            tp += 1
        elif expected:
            fn += 1
            misses.append(Miss(case_id, "false_negative", why))
        elif predicted:
            fp += 1
            misses.append(Miss(case_id, "false_positive", why))
        else:
            tn += 1
    return CorpusScore(tp=tp, fp=fp, fn=fn, tn=tn, misses=tuple(misses))


class TextCase(BaseModel):
    """One labelled text of ``tests/corpus/screening/text_cases.jsonl``: the deny list's
    canonical terms it must find (none: the text is innocent) and why."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(min_length=1, max_length=100)
    field: ScreenedField
    text: str = Field(max_length=10_000)
    expected: tuple[str, ...] = ()
    note: str = Field(min_length=1, max_length=500)


def load_text_cases(path: Path) -> list[TextCase]:
    """Every case of a JSON-lines text corpus (a bad line is a ConfigError naming it)."""
    cases: list[TextCase] = []
    seen: set[str] = set()
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise ConfigError(f"text corpus {path}: cannot be read ({exc.strerror})") from exc
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            case = TextCase.model_validate(json.loads(line))
        except (json.JSONDecodeError, ValidationError) as exc:
            raise ConfigError(f"text corpus {path} line {number}: {exc}") from exc
        if case.id in seen:
            raise ConfigError(f"text corpus {path} line {number}: duplicate id {case.id!r}")
        seen.add(case.id)
        cases.append(case)
    return cases


def text_case_outcome(case: TextCase, matcher: TermMatcher) -> Case:
    """A text case scored: positive when the matcher found anything; a positive case counts as
    found only when the matcher named exactly the expected terms (another mark than the one in
    the text is not a detection of it)."""
    found = {hit.term for hit in matcher.find(case.text, case.field)}
    expected = set(case.expected)
    predicted = found == expected if expected else bool(found)
    why = case.note
    if found != expected:
        why = f"expected {sorted(expected)} found {sorted(found)}: {case.note}"
    return (case.id, bool(expected), predicted, why)


def score_text_corpus(path: Path, matcher: TermMatcher) -> CorpusScore:
    """The deny list's matcher over a labelled text corpus."""
    return score(text_case_outcome(case, matcher) for case in load_text_cases(path))
