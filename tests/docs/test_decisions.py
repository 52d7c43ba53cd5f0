"""docs/decisions.md keeps one shape: numbered entries, each with its status and its context,
decision and consequences in that order, and every link to a measurement log resolving."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from shared.platform.settings import REPO_ROOT

DECISIONS = REPO_ROOT / "docs" / "decisions.md"
HEADING = re.compile(r"^## (\d+)\. (\S.*)$", re.MULTILINE)
STATUS = re.compile(r"^Status: (accepted \(\d{4}-\d{2}(-\d{2})?\)|superseded by (\d+))$")
SECTIONS = ("Context:", "Decision:", "Consequences:")
LINK = re.compile(r"\]\(([^)#]+)\)")


def entries(text: str) -> list[tuple[int, str, str]]:
    """(number, title, body) of each entry, in the file's order."""
    heads = list(HEADING.finditer(text))
    ends = [h.start() for h in heads[1:]] + [len(text)]
    return [(int(h[1]), h[2], text[h.end() : end]) for h, end in zip(heads, ends, strict=True)]


def problems(text: str, *, base: Path) -> list[str]:
    """Everything in ``text`` that breaks the format, one line each."""
    found = entries(text)
    out = [] if found else ["no entries"]
    numbers = [n for n, _t, _b in found]
    if numbers != list(range(1, len(found) + 1)):
        out.append(f"entries numbered {numbers}, not 1..{len(found)} in order")
    for number, title, body in found:
        out += [f"§{number} {title[:40]}: {p}" for p in _entry_problems(body, numbers, base)]
    return out


def _entry_problems(body: str, numbers: list[int], base: Path) -> list[str]:
    lines = body.strip().splitlines()
    status = STATUS.match(lines[0]) if lines else None
    if status is None:
        return [f"first line {lines[:1]} is not 'Status: accepted (YYYY-MM[-DD])' or superseded"]
    out = []
    if status[3] is not None and int(status[3]) not in numbers:
        out.append(f"superseded by §{status[3]}, which does not exist")
    starts = [next((i for i, ln in enumerate(lines) if ln.startswith(s)), -1) for s in SECTIONS]
    if -1 in starts or starts != sorted(starts):
        out.append(f"needs {', '.join(SECTIONS)} in that order, each starting a line")
    out += [f"links to missing {t}" for t in LINK.findall(body) if not (base / t).exists()]
    return out


def test_every_entry_has_status_context_decision_consequences() -> None:
    assert problems(DECISIONS.read_text(), base=DECISIONS.parent) == []


@pytest.mark.parametrize(
    ("text", "wanted"),
    [
        ("## 1. A\nContext: c\nDecision: d\nConsequences: e\n", "is not 'Status"),
        (
            "## 1. A\nStatus: accepted (2026-12)\nDecision: d\nContext: c\nConsequences: e\n",
            "order",
        ),
        ("## 1. A\nStatus: accepted (2026-12)\nContext: c\nDecision: d\n", "order"),
        ("## 2. A\nStatus: accepted (2026-12)\nContext: c\nDecision: d\nConsequences: e\n", "1..1"),
        ("## 1. A\nStatus: superseded by 4\nContext: c\nDecision: d\nConsequences: e\n", "§4"),
        (
            "## 1. A\nStatus: accepted (2026-12)\nContext: c\nDecision: d\n"
            "Consequences: [log](../bench/results/nowhere.md)\n",
            "missing ../bench/results/nowhere.md",
        ),
    ],
)
def test_a_broken_entry_is_named(text: str, wanted: str) -> None:
    found = problems(text, base=DECISIONS.parent)
    assert any(wanted in p for p in found), found
