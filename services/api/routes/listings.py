"""After launch: ``/jobs/{id}/unpublish``, ``/jobs/{id}/delete``, ``/jobs/{id}/reprice`` and
``/reprice`` (a niche, a theme or everything). Thin: the work is in listing_changes."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Depends, Header, Path, status

from services.api.auth import Caller, authenticate
from services.api.errors import invalid
from services.api.listing_changes import change_listings, reprice_many
from services.api.schemas.common import COMMON_ERRORS, error_responses
from services.api.schemas.review import (
    ListingChange,
    ListingChangeAccepted,
    RepriceMany,
    RepriceManyAccepted,
    RepriceRequest,
)
from services.api.state import State
from shared.contract.events import DecisionAction

router = APIRouter(tags=["listings"], responses=COMMON_ERRORS)

CallerDep = Annotated[Caller | None, Depends(authenticate)]
JobId = Annotated[str, Path(min_length=1, max_length=100)]
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        max_length=200,
        description="Repeat a request safely: the same key is the same decision",
    ),
]
_ANSWERS = error_responses(403, 404, 409)
_DOC = (
    " Produced to `seller.decisions` (202 once the broker acknowledged it); every channel's "
    "publisher and the printify stage act on it once. The job's owner or an admin key."
)


def _accepted(job_id: str, decision: object) -> ListingChangeAccepted:
    return ListingChangeAccepted.model_validate(
        {"job_id": job_id, **decision.model_dump(mode="json")}  # type: ignore[attr-defined]
    )


def _take_down(action: DecisionAction, what: str) -> None:
    """``POST /jobs/{id}/<action>``: unpublish and delete differ only in what they do."""

    async def endpoint(
        job_id: JobId,
        state: State,
        caller: CallerDep,
        key: IdempotencyKey = None,
        body: Annotated[ListingChange | None, Body()] = None,
    ) -> ListingChangeAccepted:
        made = await change_listings(
            state, caller, job_id, action, body or ListingChange(), idempotency_key=key
        )
        return _accepted(job_id, made)

    router.post(
        f"/jobs/{{job_id}}/{action.value}",
        status_code=status.HTTP_202_ACCEPTED,
        response_model=ListingChangeAccepted,
        responses=_ANSWERS,
        name=action.value,
        description=what + _DOC,
    )(endpoint)


_take_down(DecisionAction.UNPUBLISH, "Take the job's listings down (kept, to be listed again).")
_take_down(
    DecisionAction.DELETE,
    "Take the job's listings down and delete its products from Printify.",
)


@router.post(
    "/jobs/{job_id}/reprice",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=ListingChangeAccepted,
    responses=_ANSWERS,
    description="Price the job's products again by a margin, in Printify and on every channel."
    + _DOC,
)
async def reprice(
    job_id: JobId, state: State, caller: CallerDep, body: RepriceRequest, key: IdempotencyKey = None
) -> ListingChangeAccepted:
    scope = ListingChange.model_validate(body.model_dump(by_alias=True, exclude={"margin_percent"}))
    made = await change_listings(
        state, caller, job_id, DecisionAction.REPRICE, scope,
        margin_percent=body.margin_percent, idempotency_key=key,
    )  # fmt: skip
    return _accepted(job_id, made)


@router.post(
    "/reprice",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=RepriceManyAccepted,
    responses=error_responses(404),
    description="A new margin for every listed job of a niche or a theme, or (`all`) every "
    "one: the caller's own jobs (every job with an admin key), one decision per job.",
)
async def reprice_jobs(state: State, caller: CallerDep, body: RepriceMany) -> RepriceManyAccepted:
    if body.niche is None and body.theme is None and not body.all:
        raise invalid("niche", "name a niche or a theme, or set all to true")
    made = await reprice_many(state, caller, body)
    by = caller.principal if caller is not None else "anonymous"
    decisions = [
        ListingChangeAccepted(job_id=job, decision_id=decision, action="reprice", decided_by=by)
        for job, decision in made
    ]
    return RepriceManyAccepted(decisions=decisions)
