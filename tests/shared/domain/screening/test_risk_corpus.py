"""Scoring a risk reviewer on a labelled text corpus: the counts, the misses, and the real
client over the Anthropic simulator's app (in process) on the sample corpus."""

from __future__ import annotations

from pathlib import Path

import httpx2
import pytest

from shared.adapters.vendors.claude import ClaudeClient
from shared.domain.screening.checks import DesignText, RiskFinding, RiskLevel, RiskReview
from shared.domain.screening.corpus import load_text_cases as load_cases
from shared.domain.screening.risk_corpus import score_risk_corpus
from simulators import anthropic as anthropic_sim
from simulators.common import Knobs

SAMPLE = Path(__file__).parents[3] / "corpus" / "screening" / "risk_sample.jsonl"


class Fixed:
    """A reviewer answering ``level`` for every design, and recording what it was shown."""

    def __init__(self, level: RiskLevel) -> None:
        self.level = level
        self.seen: list[DesignText] = []

    async def review_risk(self, text: DesignText, *, job_id: str) -> RiskReview:
        self.seen.append(text)
        findings = () if self.level is RiskLevel.NONE else (RiskFinding("X", "why"),)
        return RiskReview(level=self.level, findings=findings)


def test_the_sample_has_positives_and_negatives_in_every_text_field() -> None:
    cases = load_cases(SAMPLE)
    assert len(cases) == 10 and len({c.id for c in cases}) == 10
    assert sum(1 for c in cases if c.expected) == 6
    assert {c.field for c in cases} == {"title", "tags", "description", "prompt", "image_text"}
    assert all(c.note for c in cases)


async def test_a_reviewer_flagging_everything_has_full_recall_and_poor_precision() -> None:
    reviewer = Fixed(RiskLevel.HIGH)
    result = await score_risk_corpus(SAMPLE, reviewer)
    assert (result.tp, result.fp, result.fn, result.tn) == (6, 4, 0, 0)
    assert result.recall == 1.0 and result.precision == pytest.approx(0.6)
    assert len(result.misses) == 4 and all(m.kind == "false_positive" for m in result.misses)
    # Each case's text is in the field it names, the others empty.
    shown = dict(zip((c.id for c in load_cases(SAMPLE)), reviewer.seen, strict=True))
    assert shown["risk-02"].tags == ("pikachu lover",) and shown["risk-02"].title == ""
    assert shown["risk-05"].image_text == "JUST DO IT"
    assert shown["risk-04"].prompt.startswith("vintage badge of taylor swift")


async def test_the_level_that_flags_is_the_deployments() -> None:
    low = Fixed(RiskLevel.LOW)
    assert (await score_risk_corpus(SAMPLE, low)).tp == 0  # medium, by default
    result = await score_risk_corpus(SAMPLE, low, flag_from=RiskLevel.LOW)
    assert (result.tp, result.fp) == (6, 4)


async def test_a_reviewer_flagging_nothing_misses_every_positive() -> None:
    result = await score_risk_corpus(SAMPLE, Fixed(RiskLevel.NONE))
    assert (result.tp, result.fp, result.fn, result.tn) == (0, 0, 6, 4)
    assert result.recall == 0.0 and result.precision == 1.0
    assert any(m.case_id == "risk-03" and "Kansas City Chiefs" in m.why for m in result.misses)


async def test_claude_over_the_simulator_on_the_sample() -> None:
    app = anthropic_sim.create_app(Knobs.from_env("anthropic"))
    async with ClaudeClient(
        api_key="sk-ant-corpus",
        base_url="http://anthropic",
        transport=httpx2.ASGITransport(app=app),
    ) as client:
        result = await score_risk_corpus(SAMPLE, client)
    # The simulated model knows the plainly named marks; spaced-out letters evade it (the deny
    # list catches those), and it raises no false alarm on the near-misses.
    assert (result.tp, result.fp, result.fn, result.tn) == (5, 0, 1, 4)
    assert [m.case_id for m in result.misses] == ["risk-06"]
