"""``POST /jobs/bulk`` (a CSV of jobs) and ``GET /submission-options`` (what a job may ask for)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from services.api.schemas.common import FieldProblem, _Wire
from shared.contract.events import Priority, ProductType


class BulkLine(_Wire):
    """What became of one line of the file."""

    line: int = Field(description="The line's number in the file (the header is line 1)")
    status: Literal["accepted", "already_accepted", "invalid", "not_submitted"] = Field(
        description="accepted (durably queued now), already_accepted (this line was accepted "
        "when the file was sent before: the same job), invalid (errors say why; nothing "
        "submitted), not_submitted (the broker failed before it: send the file again)"
    )
    job_id: str | None = None
    errors: list[FieldProblem] = Field(
        default_factory=list, description="By column, with POST /jobs's messages"
    )


class BulkResult(_Wire):
    """The answer for a CSV of jobs: every line's outcome, in the file's order, and counts."""

    ok: bool = Field(description="Every line is accepted (now or before)")
    accepted: int
    already_accepted: int
    invalid: int
    not_submitted: int
    lines: list[BulkLine]


class SubmissionOptions(_Wire):
    """What a job of this deployment may ask for (the dashboard's new-job form)."""

    product_types: list[ProductType]
    channels: list[str] = Field(description="The deployment's sales channels (PUBLISH_CHANNELS)")
    priorities: list[Priority]
    min_level: int
    max_level: int
    max_images_per_job: int
    review_default: bool = Field(description="REVIEW_DEFAULT: a job that does not say is reviewed")
    bulk_max_rows: int
    bulk_columns: list[str] = Field(description="The CSV's columns, the optional ones last")
