"""The seller's review and cancel: ``/jobs/{id}/images/{index}/approve|reject|regenerate``,
``/jobs/{id}/cancel``, ``/jobs/{id}/review`` and ``/reviews`` (thin: the work is in decisions
and review_queries)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Depends, Path, Query, Response, status

from services.api import review_queries
from services.api.auth import Caller, authenticate
from services.api.decisions import Outcome, cancel_job, decide_image
from services.api.errors import ApiError
from services.api.schemas.common import COMMON_ERRORS, error_responses
from services.api.schemas.review import (
    CancelAccepted,
    CancelRequest,
    DecisionAccepted,
    DecisionRequest,
    JobReview,
    RegenerateRequest,
    ReviewQueue,
)
from services.api.state import State
from shared.adapters.store.reviews import REVIEW_STATES, ReviewState
from shared.contract.events import DecisionAction

router = APIRouter(tags=["review"], responses=COMMON_ERRORS)

CallerDep = Annotated[Caller | None, Depends(authenticate)]
JobId = Annotated[str, Path(min_length=1, max_length=100)]
ImageIndex = Annotated[int, Path(ge=0, le=1000)]

_DECISION_ANSWERS = {
    200: {"description": "The same decision was taken before: nothing produced again"},
    **error_responses(403, 404, 409),
}
_DECISION_DOC = (
    " The decision is claimed (one per image at a time), then produced to `seller.decisions`; "
    "202 once the broker acknowledged it. The same decision again answers 200 with its "
    "decisionId; another decision about a decided image, or any while a regenerate is in "
    "flight, 409 with the reason. The job's owner (the key that submitted it) or an admin key."
)


def _answer(outcome: Outcome, response: Response) -> None:
    if not outcome.produced:
        response.status_code = status.HTTP_200_OK


@router.post(
    "/jobs/{job_id}/images/{image_index}/approve",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=DecisionAccepted,
    responses=_DECISION_ANSWERS,
    description="Publish the image's products to the job's channels." + _DECISION_DOC,
)
async def approve_image(
    job_id: JobId,
    image_index: ImageIndex,
    state: State,
    caller: CallerDep,
    response: Response,
    body: Annotated[DecisionRequest | None, Body()] = None,
) -> DecisionAccepted | CancelAccepted:
    """Approve an image of a job with review."""
    generation = body.generation if body else None
    outcome = await decide_image(
        state, caller, job_id, image_index, DecisionAction.APPROVE, generation=generation
    )
    _answer(outcome, response)
    return outcome.body


@router.post(
    "/jobs/{job_id}/images/{image_index}/reject",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=DecisionAccepted,
    responses=_DECISION_ANSWERS,
    description="Delete the image's products from Printify; nothing is listed." + _DECISION_DOC,
)
async def reject_image(
    job_id: JobId,
    image_index: ImageIndex,
    state: State,
    caller: CallerDep,
    response: Response,
    body: Annotated[DecisionRequest | None, Body()] = None,
) -> DecisionAccepted | CancelAccepted:
    """Reject an image of a job with review."""
    generation = body.generation if body else None
    outcome = await decide_image(
        state, caller, job_id, image_index, DecisionAction.REJECT, generation=generation
    )
    _answer(outcome, response)
    return outcome.body


@router.post(
    "/jobs/{job_id}/images/{image_index}/regenerate",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=DecisionAccepted,
    responses=_DECISION_ANSWERS,
    description="Make a new image (a new seed; `prompt` to render another prompt) that replaces "
    "this one; its products are rebuilt." + _DECISION_DOC,
)
async def regenerate_image(
    job_id: JobId,
    image_index: ImageIndex,
    state: State,
    caller: CallerDep,
    response: Response,
    body: Annotated[RegenerateRequest | None, Body()] = None,
) -> DecisionAccepted | CancelAccepted:
    """Regenerate an image of a job with review."""
    outcome = await decide_image(
        state,
        caller,
        job_id,
        image_index,
        DecisionAction.REGENERATE,
        generation=body.generation if body else None,
        prompt=body.prompt if body else None,
    )
    _answer(outcome, response)
    return outcome.body


@router.post(
    "/jobs/{job_id}/cancel",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=CancelAccepted,
    responses={
        200: {"description": "The job was cancelled before: its cancel, nothing produced"},
        **error_responses(403, 404, 409),
    },
)
async def cancel(
    job_id: JobId,
    state: State,
    caller: CallerDep,
    response: Response,
    body: Annotated[CancelRequest | None, Body()] = None,
) -> DecisionAccepted | CancelAccepted:
    """Cancel a job: no stage starts new work for it, and what it made is unlisted and deleted
    (the job's owner or an admin key). 202 once the decision is acknowledged by the broker."""
    outcome = await cancel_job(state, caller, job_id, reason=body.reason if body else None)
    _answer(outcome, response)
    return outcome.body


@router.get("/jobs/{job_id}/review", response_model=JobReview, responses=error_responses(404))
async def get_review(job_id: JobId, state: State, caller: CallerDep) -> JobReview:
    """A job's images with their review state, copy, mockups, prices and margins."""
    facts = await review_queries.job_facts(state.pool, job_id)
    if facts is None:
        raise ApiError(404, "not_found", f"job {job_id} not found")
    return JobReview(
        job_id=job_id,
        review=facts.review,
        cancelled=facts.cancelled,
        detailed_status="cancelled" if facts.cancelled else facts.status,
        theme=facts.theme,
        style=facts.style,
        niche=facts.niche,
        images=await review_queries.job_review(state.pool, job_id),
    )


@router.get("/reviews", response_model=ReviewQueue)
async def list_reviews(
    state: State,
    caller: CallerDep,
    review_state: Annotated[
        ReviewState,
        Query(alias="state", description=f"One of {', '.join(REVIEW_STATES)}"),
    ] = "awaiting",
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> ReviewQueue:
    """Images of the caller's jobs (every job's for an admin key) in one review state, the
    longest waiting first."""
    owner = caller.principal if caller is not None and not caller.admin else None
    items, total = await review_queries.review_queue(
        state.pool, state=review_state, owner=owner, limit=limit
    )
    return ReviewQueue(reviews=items, total=total)
