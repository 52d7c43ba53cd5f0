"""The deployment's screening settings: which checks run, each check's policy and limits."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from shared.contract.events import ScreeningCheck, ScreeningDecision
from shared.platform.settings import PodSettings

# Block a deny-list hit (in the copy or rendered into the art); send the rest to review.
DEFAULT_POLICY: dict[ScreeningCheck, ScreeningDecision] = {
    ScreeningCheck.DENY_LIST: ScreeningDecision.BLOCK,
    ScreeningCheck.RENDERED_TEXT: ScreeningDecision.BLOCK,
    ScreeningCheck.RISK_REVIEW: ScreeningDecision.REVIEW,
    ScreeningCheck.NEAR_DUPLICATE: ScreeningDecision.REVIEW,
    ScreeningCheck.UNSAFE_IMAGE: ScreeningDecision.REVIEW,
}


class ScreeningSettings(PodSettings):
    """SCREENING_* (env names in the README)."""

    screening_enabled: bool = Field(
        default=True, description="Screen every design before the printify stage (off: allow all)"
    )
    screening_policy: dict[ScreeningCheck, ScreeningDecision] = Field(
        default_factory=dict,
        description="Per check: block, review or allow (and record), over the defaults (JSON)",
    )
    screening_checks_off: list[ScreeningCheck] = Field(
        default_factory=list, description="Checks not run at all (JSON list)"
    )
    screening_deny_terms_file: Path | None = Field(
        default=None,
        description="The seller's own protected terms (JSON), added to the shipped deny list",
    )
    screening_risk_level: str = Field(
        default="medium",
        pattern=r"^(low|medium|high)$",
        description="Claude's risk level from which the risk review flags a design",
    )
    # 8: on the corpus (tests/corpus/screening/duplicate_cases.jsonl, mirror images counted)
    # recall 0.74 at precision 1.00, and no pair of 80,000 unrelated renders that close (10:
    # 0.77 but 1 in 80,000; 12: 0.80 but 1 in 11,000). 10 held a design of the cluster chaos
    # test for review: two plainly different simulator renders 10 bits apart. A false
    # near-duplicate holds a seller's design; a missed one is the cheaper error. Phash sets 32
    # of its 64 bits, so distances are even: 9 is 8.
    screening_duplicate_distance: int = Field(
        default=8, ge=0, le=15, description="Most differing bits of two near-duplicate designs"
    )
    screening_unsafe_threshold: float = Field(
        default=0.6, gt=0, le=1, description="The classifier's confidence that flags an image"
    )
    screening_ocr_timeout_s: float = Field(
        default=20.0, gt=0, le=300, description="Most one image's OCR may take"
    )

    def policy(self) -> dict[ScreeningCheck, ScreeningDecision]:
        """Each check's outcome when it flags a design."""
        return {**DEFAULT_POLICY, **self.screening_policy}
