"""A seller's decision at the front door: checked, claimed, then produced durably before the 202.

The API never acts on a decision itself; it makes sure the decision is still possible and that
only one of two concurrent ones is produced, then puts it on ``seller.decisions`` for the stages.
Order matters, as for a submission (services/api/submit.py):

1. the CLAIM: one compare-and-set statement (``image_reviews`` for an image, the job's row for a
   cancel). Whoever changes the row first owns the decision; a second request sees it taken and
   answers from the row (the same decision again: 200 and nothing produced; another one: 409);
2. the PRODUCE (acks=all). A broker that does not acknowledge it gets the claim put back and a
   503, so nothing is claimed to be decided that is not on the topic;
3. a claim the pipeline has not confirmed (folded) after :data:`STALE_CLAIM_S` may be one whose
   API died between 1 and 2: the same request then produces the SAME decision again (same
   decision id, same event id), which every stage recognises as one.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass

from opentelemetry.trace import SpanKind

from services.api import review_queries
from services.api.auth import Caller
from services.api.errors import ApiError
from services.api.producer import BrokerUnavailable
from services.api.review_queries import JobFacts
from services.api.schemas.review import CancelAccepted, DecisionAccepted
from services.api.state import ApiState
from shared.adapters.store import reviews
from shared.adapters.store.reviews import ReviewRow, ReviewState
from shared.contract.events import DecisionAction, SellerDecision, SellerDecisionPayload
from shared.contract.topics import SELLER_DECISIONS
from shared.platform import tracing

logger = logging.getLogger(__name__)

# A decision's event id derives from its decision id: produced again, it is the same event.
_DECISION_NS = uuid.UUID("3e7a9c1d-52b8-4f06-a1d4-8c2e6b0f9a37")
# A job has one cancel: its decision id derives from the job id, so every cancel of it (a retry,
# a second seller, a re-produce) names the same decision.
_CANCEL_NS = uuid.UUID("9b4f2e60-1c7d-4a85-b3e9-5d0a7c6f1e24")

# How long a claimed decision may wait for its fold before a repeat produces it again.
STALE_CLAIM_S = 30.0
ANONYMOUS = "anonymous"

# The state each image decision puts its image in.
_STATE_OF: dict[DecisionAction, ReviewState] = {
    DecisionAction.APPROVE: "approved",
    DecisionAction.REJECT: "rejected",
    DecisionAction.REGENERATE: "regenerating",
}
_PAST = {"approve": "approved", "reject": "rejected", "regenerate": "sent back to regenerate"}


@dataclass(frozen=True)
class Outcome:
    """A decision's answer: 202 when this request produced it, 200 when it was taken before."""

    produced: bool
    body: DecisionAccepted | CancelAccepted


def decided_by(caller: Caller | None) -> str:
    """Who decides: the key's principal, or ``anonymous`` without authentication."""
    return caller.principal if caller is not None else ANONYMOUS


def cancel_decision_id(job_id: str) -> uuid.UUID:
    """The decision id of the job's cancel (one per job)."""
    return uuid.uuid5(_CANCEL_NS, job_id)


async def job_for_decision(state: ApiState, caller: Caller | None, job_id: str) -> JobFacts:
    """The job a decision is about, once the caller may decide about it: its owner (the key
    that submitted it), an admin key, or anyone when authentication is off."""
    facts = await review_queries.job_facts(state.pool, job_id)
    if facts is None:
        raise ApiError(404, "not_found", f"job {job_id} not found")
    if caller is not None and not caller.admin and facts.submitted_by != caller.principal:
        raise ApiError(
            403,
            "forbidden",
            f"job {job_id} was submitted with another API key: only that key or an admin key "
            "may decide about it",
        )
    return facts


async def decide_image(
    state: ApiState,
    caller: Caller | None,
    job_id: str,
    image_index: int,
    action: DecisionAction,
    *,
    generation: int | None,
    prompt: str | None = None,
) -> Outcome:
    """Approve, reject or regenerate one image of a job with review, or one screening held for
    review in a job without (see the module's doc)."""
    facts = await job_for_decision(state, caller, job_id)
    screened = await review_queries.screened(state.pool, job_id, image_index)
    if screened.decision == "block" and not screened.reviewed:
        raise ApiError(
            409,
            "blocked",
            f"image {image_index} was blocked by screening ({screened.summary or 'no reason'}): "
            "nothing of it was made, there is nothing to decide",
        )
    if not facts.review and not screened.held:
        raise ApiError(
            409,
            "not_reviewed",
            f"job {job_id} was not submitted with review and screening did not hold image "
            f"{image_index} for review: its products are handled as it asked (autoPublish), "
            "there is nothing to decide",
        )
    if facts.cancelled:
        raise _cancelled(job_id)
    if image_index >= facts.image_count:
        made = facts.image_count
        raise ApiError(404, "not_found", f"job {job_id} has no image {image_index} (of {made})")
    by = decided_by(caller)
    # Twice at most: a claim put back (a broker failure) between our claim and our read.
    for _ in range(2):
        claimed = await reviews.claim(
            state.pool,
            job_id=job_id,
            image_index=image_index,
            to=_STATE_OF[action],
            action=action.value,
            decision_id=uuid.uuid4(),
            decided_by=by,
            generation=generation,
            prompt=prompt,
        )
        if claimed is not None:
            await _produce_claimed(state, claimed)
            return Outcome(True, _accepted(claimed))
        row = await reviews.get(state.pool, job_id, image_index)
        if row is None:
            raise ApiError(
                409,
                "not_ready",
                f"image {image_index} is not ready for review (its products are still being made)",
            )
        if row.state != "awaiting" or (generation is not None and row.generation != generation):
            return await _answer_taken(state, row, action, generation)
    raise ApiError(409, "busy", f"image {image_index} is being decided right now; try again")


async def _answer_taken(
    state: ApiState, row: ReviewRow, action: DecisionAction, generation: int | None
) -> Outcome:
    """The answer to a decision about an image that was not awaiting it."""
    i = row.image_index
    if row.state == "awaiting":
        raise ApiError(
            409,
            "stale_generation",
            f"image {i} is generation {row.generation} now, not {generation} as the decision "
            "said (it was regenerated since): look at the image as it is first",
        )
    if row.state == "cancelled":
        raise _cancelled(row.job_id)
    same = row.decision == action.value and row.state == _STATE_OF[action]
    if same and (generation is None or generation == row.generation):
        if not row.decision_folded and row.decision_id is not None:
            retaken = await reviews.retake_stale(
                state.pool, row.job_id, i, row.decision_id, older_than_s=STALE_CLAIM_S
            )
            if retaken is not None:
                logger.warning(
                    "re-producing an unconfirmed decision job_id=%s image_index=%d decision_id=%s",
                    row.job_id,
                    i,
                    row.decision_id,
                )
                await _produce_claimed(state, retaken)
                return Outcome(True, _accepted(retaken))
        return Outcome(False, _accepted(row))
    if row.state == "regenerating":
        raise ApiError(
            409,
            "regenerate_in_flight",
            f"a regenerate of image {i} is in flight; wait for the new image",
        )
    when = row.decided_at.isoformat(timespec="seconds") if row.decided_at else "an earlier time"
    raise ApiError(
        409,
        "already_decided",
        f"image {i} was {_PAST.get(row.decision or '', row.state)} by {row.decided_by} at {when} "
        f"(generation {row.generation}); it cannot be {_PAST[action.value]} now",
    )


def _cancelled(job_id: str) -> ApiError:
    return ApiError(409, "job_cancelled", f"job {job_id} was cancelled: nothing more to decide")


def _accepted(row: ReviewRow) -> DecisionAccepted:
    if row.decision_id is None or row.decision is None or row.decided_by is None:
        raise RuntimeError("a decided image review row without its decision")
    return DecisionAccepted(
        job_id=row.job_id,
        image_index=row.image_index,
        action=row.decision,
        decision_id=row.decision_id,
        generation=row.generation,
        state=row.state,
        decided_by=row.decided_by,
        decided_at=row.decided_at,
    )


async def _produce_claimed(state: ApiState, row: ReviewRow) -> None:
    """Produce the decision the row claims; on a broker failure put the claim back, then 503."""
    if row.decision_id is None or row.decision is None or row.decided_by is None:
        raise RuntimeError("a claimed image review row without its decision")
    payload = SellerDecisionPayload(
        decision_id=row.decision_id,
        action=DecisionAction(row.decision),
        image_index=row.image_index,
        generation=row.generation,
        prompt=row.prompt,
        decided_by=row.decided_by,
    )
    try:
        await _produce(state, row.job_id, payload)
    except BrokerUnavailable as exc:
        released = await reviews.release(state.pool, row.job_id, row.image_index, row.decision_id)
        logger.error(
            "decision not accepted job_id=%s image_index=%d action=%s released=%s reason=%s",
            row.job_id,
            row.image_index,
            row.decision,
            released,
            exc,
        )
        raise _not_accepted(exc) from exc


async def cancel_job(
    state: ApiState, caller: Caller | None, job_id: str, *, reason: str | None
) -> Outcome:
    """Cancel a job: claim its cancel on the job's row, produce the decision (see the module's
    doc). A job already cancelled answers its cancel; one that ended with nothing made, 409."""
    facts = await job_for_decision(state, caller, job_id)
    decision_id = cancel_decision_id(job_id)
    by = decided_by(caller)
    if not facts.cancelled:
        if facts.status in ("completed", "partial", "failed") and facts.products_made == 0:
            raise ApiError(
                409,
                "nothing_to_cancel",
                f"job {job_id} already ended ({facts.status}) with no product made: there is "
                "nothing to stop or undo",
            )
        if await review_queries.claim_cancel(state.pool, job_id, by):
            await _produce_cancel(state, job_id, decision_id, by, reason)
            return Outcome(True, _cancel_answer(job_id, by))
        facts = await job_for_decision(state, caller, job_id)
    retaken = await review_queries.retake_cancel(state.pool, job_id, older_than_s=STALE_CLAIM_S)
    if retaken is not None:
        logger.warning("re-producing an unrecorded cancel job_id=%s", job_id)
        await _produce_cancel(state, job_id, decision_id, retaken, reason)
        return Outcome(True, _cancel_answer(job_id, retaken))
    return Outcome(False, _cancel_answer(job_id, facts.cancelled_by or by))


def _cancel_answer(job_id: str, by: str) -> CancelAccepted:
    return CancelAccepted(job_id=job_id, decision_id=cancel_decision_id(job_id), decided_by=by)


async def _produce_cancel(
    state: ApiState, job_id: str, decision_id: uuid.UUID, by: str, reason: str | None
) -> None:
    payload = SellerDecisionPayload(
        decision_id=decision_id, action=DecisionAction.CANCEL, decided_by=by, reason=reason
    )
    try:
        await _produce(state, job_id, payload)
    except BrokerUnavailable as exc:
        await review_queries.release_cancel(state.pool, job_id, by)
        logger.error("cancel not accepted job_id=%s reason=%s", job_id, exc)
        raise _not_accepted(exc) from exc


async def _produce(state: ApiState, job_id: str, payload: SellerDecisionPayload) -> None:
    event = SellerDecision(
        event_id=uuid.uuid5(_DECISION_NS, str(payload.decision_id)),
        job_id=job_id,
        producer="api",
        payload=payload,
    )
    attributes: dict[str, str | int] = {
        "pod.job_id": job_id,
        "messaging.destination.name": SELLER_DECISIONS,
    }
    with tracing.span("seller decision", kind=SpanKind.PRODUCER, attributes=attributes):
        await state.producer.send(
            SELLER_DECISIONS,
            event.to_json(),
            key=job_id,
            timeout=state.settings.produce_timeout_s,
            headers=tracing.headers_now(),
        )
    logger.info(
        "decision accepted job_id=%s action=%s image_index=%s decision_id=%s decided_by=%s",
        job_id,
        payload.action.value,
        payload.image_index,
        payload.decision_id,
        payload.decided_by,
    )


async def produce_decision(state: ApiState, job_id: str, payload: SellerDecisionPayload) -> None:
    """Produce a decision that needs no claim (after launch: unpublish, delete, reprice); a
    broker that does not acknowledge it is a 503 (nothing decided)."""
    try:
        await _produce(state, job_id, payload)
    except BrokerUnavailable as exc:
        logger.error("decision not accepted job_id=%s reason=%s", job_id, exc)
        raise _not_accepted(exc) from exc


def _not_accepted(exc: BrokerUnavailable) -> ApiError:
    return ApiError(
        503,
        "kafka_unavailable",
        f"the decision was not accepted: {exc}. Nothing was decided; send it again.",
        headers={"Retry-After": "5"},
    )
