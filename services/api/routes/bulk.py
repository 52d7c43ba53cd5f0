"""``POST /jobs/bulk``: many jobs from a CSV file; ``GET /submission-options``: what a job may
ask for here (thin: the work is in services/api/bulk.py and submit.py)."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from services.api import bulk
from services.api.auth import Principal
from services.api.schemas.bulk import BulkLine, BulkResult, SubmissionOptions
from services.api.schemas.common import COMMON_ERRORS, error_responses
from services.api.state import State
from shared.contract.events import MAX_LEVEL, MIN_LEVEL, Priority, ProductType

logger = logging.getLogger(__name__)
router = APIRouter(tags=["jobs"], responses=COMMON_ERRORS)

# services/api/guards.py OTHER_BODIES lets text/csv through to this path only.
BULK_PATH = "/jobs/bulk"
_CSV_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "A header line naming the columns ("
        + ", ".join(bulk.REQUIRED)
        + "; optionally "
        + ", ".join(bulk.OPTIONAL)
        + "), then one job a line. types and channels are lists separated by | or ;. "
        "An empty cell leaves the field unset (as if POST /jobs's body did not give it).",
        "content": {"text/csv": {"schema": {"type": "string"}}},
    }
}


@router.post(
    BULK_PATH,
    response_model=BulkResult,
    responses={
        **error_responses(400),
        503: {
            "model": BulkResult,
            "description": "The broker failed mid-file: the lines before it are accepted, the "
            "rest not submitted; send the same file again to complete it (no duplicates)",
        },
    },
    openapi_extra=_CSV_BODY,
)
async def submit_bulk(request: Request, state: State, principal: Principal) -> JSONResponse:
    """Submit one job per CSV line, each checked as POST /jobs checks a body. Resumable: a
    line accepted before (the same content, at the same place among identical lines) is not
    submitted twice when the file is sent again."""
    lines = bulk.read_lines(await request.body(), max_rows=state.settings.bulk_max_rows)
    outcomes = await bulk.submit_lines(state, lines, principal=principal)
    counts = {s: sum(1 for o in outcomes if o.status == s) for s in bulk.LineStatus}
    result = BulkResult(
        ok=counts[bulk.LineStatus.INVALID] == counts[bulk.LineStatus.NOT_SUBMITTED] == 0,
        accepted=counts[bulk.LineStatus.ACCEPTED],
        already_accepted=counts[bulk.LineStatus.ALREADY_ACCEPTED],
        invalid=counts[bulk.LineStatus.INVALID],
        not_submitted=counts[bulk.LineStatus.NOT_SUBMITTED],
        lines=[
            BulkLine.model_validate(
                {"line": o.line, "status": o.status.value, "job_id": o.job_id, "errors": o.errors}
            )
            for o in outcomes
        ],
    )
    stopped = counts[bulk.LineStatus.NOT_SUBMITTED] > 0
    logger.info(
        "bulk file read lines=%d accepted=%d already_accepted=%d invalid=%d not_submitted=%d",
        len(outcomes),
        result.accepted,
        result.already_accepted,
        result.invalid,
        result.not_submitted,
    )
    return JSONResponse(
        result.model_dump(mode="json", by_alias=True),
        status_code=503 if stopped else 200,
        headers={"Retry-After": "5"} if stopped else None,
    )


@router.get("/submission-options", response_model=SubmissionOptions)
async def submission_options(state: State, principal: Principal) -> SubmissionOptions:
    """What a job may ask for in this deployment: product types, channels, priorities, limits."""
    s = state.settings
    return SubmissionOptions(
        product_types=list(ProductType),
        channels=list(s.publish_channels),
        priorities=list(Priority),
        min_level=MIN_LEVEL,
        max_level=MAX_LEVEL,
        max_images_per_job=s.max_images_per_job,
        review_default=s.review_default,
        bulk_max_rows=s.bulk_max_rows,
        bulk_columns=[*bulk.REQUIRED, *bulk.OPTIONAL],
    )
