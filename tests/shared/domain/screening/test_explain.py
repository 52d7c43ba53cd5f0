"""Screening's findings in words (the job's log line, the blocked image's summary in the job's
error, the checks flagged), without a database."""

from __future__ import annotations

from shared.contract.events import (
    DesignRef,
    Screening,
    ScreeningCheck,
    ScreeningDecision,
    ScreeningReason,
)
from shared.domain.screening import explain

BLOCK, REVIEW, ALLOW = ScreeningDecision.BLOCK, ScreeningDecision.REVIEW, ScreeningDecision.ALLOW


def reason(check: ScreeningCheck, outcome: ScreeningDecision, **fields: object) -> ScreeningReason:
    return ScreeningReason.model_validate(
        {"check": check, "outcome": outcome, "detail": "what the check said", **fields}
    )


def decided(*reasons: ScreeningReason) -> Screening:
    decision = max((r.outcome for r in reasons), key=lambda d: d.severity, default=ALLOW)
    return Screening(decision=decision, reasons=list(reasons))


def test_each_check_says_what_it_found() -> None:
    said = [
        explain.reason_text(r)
        for r in (
            reason(ScreeningCheck.RENDERED_TEXT, BLOCK, field="image_text", terms=["Pikachu"]),
            reason(ScreeningCheck.RISK_REVIEW, REVIEW, level="high", terms=["Star Wars", "Yoda"]),
            reason(ScreeningCheck.RISK_REVIEW, REVIEW, level="medium"),
            reason(
                ScreeningCheck.NEAR_DUPLICATE,
                REVIEW,
                resembles=DesignRef(job_id="job-1", image_index=0, generation=1, distance=5),
            ),
            reason(ScreeningCheck.UNSAFE_IMAGE, REVIEW, label="violence", score=0.912),
            reason(ScreeningCheck.UNSAFE_IMAGE, REVIEW),
        )
    ]
    assert said == [
        "rendered_text — 'Pikachu' in image_text",
        "risk_review — high risk: 'Star Wars', 'Yoda'",
        "risk_review — medium risk",
        "near_duplicate — resembles job job-1 image 1 (distance 5)",
        "unsafe_image — violence (0.91)",
        "unsafe_image — what the check said",
    ]


def test_the_log_and_the_summary_name_the_findings_that_decided() -> None:
    s = decided(
        reason(ScreeningCheck.DENY_LIST, BLOCK, field="tags", terms=["Nike", "Adidas"]),
        reason(ScreeningCheck.DENY_LIST, BLOCK, field="title", terms=["Nike"]),
        reason(ScreeningCheck.UNSAFE_IMAGE, REVIEW, label="adult", score=0.7),
    )
    assert explain.log_line(2, s) == (
        "image 3 blocked by screening: deny_list — 'Nike', 'Adidas' in tags; "
        "deny_list — 'Nike' in title"
    )
    assert explain.summary(s) == "deny_list: Nike, Adidas"
    twice = decided(
        reason(ScreeningCheck.RENDERED_TEXT, BLOCK, terms=["Yoda"]),
        reason(ScreeningCheck.DENY_LIST, BLOCK, terms=["Yoda"]),
        reason(ScreeningCheck.UNSAFE_IMAGE, BLOCK, label="adult"),
    )
    assert explain.summary(twice) == "rendered_text: Yoda; deny_list: Yoda; unsafe_image"
    assert explain.flagged(s) == {
        ScreeningCheck.DENY_LIST: BLOCK,
        ScreeningCheck.UNSAFE_IMAGE: REVIEW,
    }


def test_an_allowed_image_has_no_line_and_a_long_one_is_cut() -> None:
    recorded = decided(reason(ScreeningCheck.DENY_LIST, ALLOW, terms=["Nike"]))
    assert explain.log_line(0, recorded) is None and explain.summary(recorded) is None
    assert explain.flagged(recorded) == {ScreeningCheck.DENY_LIST: ALLOW}
    many = decided(
        *[reason(ScreeningCheck.DENY_LIST, REVIEW, terms=[f"Brand{n:03}" * 20]) for n in range(20)]
    )
    line, summary = explain.log_line(0, many), explain.summary(many)
    assert line is not None and len(line) == explain.MAX_LINE and line.endswith("…")
    assert summary is not None and len(summary) == explain.MAX_SUMMARY
