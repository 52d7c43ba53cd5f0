"""After launch: a seller's unpublish, delete or reprice of a job's products, produced to
``seller.decisions`` for the stages (decision §41), and a reprice fanned out over many jobs.

Unlike a review decision, nothing here needs a claim: every stage acts once per decision id and
a second unpublish of what is down already finds nothing to take down. With an
``Idempotency-Key`` the decision id is fixed by the caller and the key, so a retry after a lost
answer produces the same decision again rather than a second one.
"""

from __future__ import annotations

import uuid

from services.api import review_queries
from services.api.auth import Caller
from services.api.decisions import decided_by, job_for_decision, produce_decision
from services.api.errors import ApiError, invalid
from services.api.schemas.review import ListingChange, RepriceMany
from services.api.state import ApiState
from shared.contract.events import DecisionAction, SellerDecisionPayload

_CHANGE_NS = uuid.UUID("5d1c7b2e-90af-4e63-8b14-2a6f0c3d9e75")


def _decision_id(caller: Caller | None, job_id: str, key: str | None) -> uuid.UUID:
    if key is None:
        return uuid.uuid4()
    return uuid.uuid5(_CHANGE_NS, f"{decided_by(caller)}:{job_id}:{key}")


async def change_listings(
    state: ApiState,
    caller: Caller | None,
    job_id: str,
    action: DecisionAction,
    change: ListingChange,
    *,
    margin_percent: float | None = None,
    idempotency_key: str | None = None,
) -> SellerDecisionPayload:
    """Check and produce one after-launch decision about ``job_id``'s products."""
    facts = await job_for_decision(state, caller, job_id)
    if facts.cancelled:
        raise ApiError(409, "job_cancelled", f"job {job_id} was cancelled: its listings are gone")
    if facts.products_made == 0:
        raise ApiError(
            409,
            "nothing_made",
            f"job {job_id} has no product yet: there is nothing to {action.value}",
        )
    if change.image_index is not None and change.image_index >= facts.image_count:
        raise invalid(
            "imageIndex",
            f"job {job_id} has {facts.image_count} image(s) (0-{facts.image_count - 1})",
        )
    shape = await review_queries.job_shape(state.pool, job_id)
    if change.product_type is not None and change.product_type.value not in shape.product_types:
        raise invalid(
            "productType", f"job {job_id} makes {', '.join(shape.product_types)}, no other type"
        )
    if change.channels is not None:
        off = [c for c in change.channels if c not in shape.channels]
        if off:
            raise invalid(
                "channels",
                f"{', '.join(off)}: job {job_id} sells on {', '.join(shape.channels)} only",
            )
    payload = SellerDecisionPayload(
        decision_id=_decision_id(caller, job_id, idempotency_key),
        action=action,
        image_index=change.image_index,
        product_type=change.product_type,
        channels=change.channels,
        margin_percent=margin_percent,
        decided_by=decided_by(caller),
        reason=change.reason,
    )
    await produce_decision(state, job_id, payload)
    return payload


async def reprice_many(
    state: ApiState, caller: Caller | None, body: RepriceMany
) -> list[tuple[str, uuid.UUID]]:
    """A new margin for every listed job of a niche (or of a theme, or every one), the caller's
    own unless it holds an admin key: one decision per job, produced in turn. A broker failure
    midway answers 503 with nothing claimed for the rest; sending it again reprices each job
    again, which changes nothing where the prices are already right."""
    owner = None if caller is None or caller.admin else caller.principal
    job_ids = await review_queries.listed_jobs(
        state.pool,
        niche=body.niche,
        theme=body.theme,
        owner=owner,
        limit=state.settings.max_page_size * 10,
    )
    if not job_ids:
        raise ApiError(404, "not_found", "no listed job matches: nothing to reprice")
    produced: list[tuple[str, uuid.UUID]] = []
    for job_id in job_ids:
        payload = SellerDecisionPayload(
            decision_id=uuid.uuid4(),
            action=DecisionAction.REPRICE,
            margin_percent=body.margin_percent,
            decided_by=decided_by(caller),
            reason=body.reason,
        )
        await produce_decision(state, job_id, payload)
        produced.append((job_id, payload.decision_id))
    return produced
