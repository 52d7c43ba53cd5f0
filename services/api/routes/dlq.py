"""``/dlq``: list the dead letters the monitor recorded, and replay them onto their stage input.

A replay re-produces a letter's replayable bytes (the original event, or the input narrowed to
what failed) onto the stage input it came from, keyed by its job id, with the envelope's
``attempt`` reset to 0 and its ``event_id`` kept, so a consumer that already handled it
recognises the duplicate. The copy carries ``pod.replay: true`` and ``pod.replay.of:
<dlq topic:partition:offset>`` headers. Letters are stamped as replayed only after the broker
acknowledged every copy.
"""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import datetime
from typing import Annotated

from confluent_kafka import KafkaException, Message
from fastapi import APIRouter, Query, status

from services.api.auth import Admin, Principal
from services.api.cursor import BadCursor, decode_cursor, encode_cursor
from services.api.errors import ApiError, invalid
from services.api.schemas.common import COMMON_ERRORS, error_responses
from services.api.schemas.dlq import (
    DeadLetterPage,
    DeadLetterView,
    DlqStage,
    ReplayRequest,
    ReplayResult,
    ReplayTarget,
)
from services.api.state import ApiState, State
from shared.adapters.store import dead_letters as dlq_queries
from shared.adapters.store.dead_letters import DeadLetterRecord, ReplayCandidate, Replayed
from shared.contract.topics import replay_targets_of
from shared.pipeline.runner import headers as hdr

logger = logging.getLogger(__name__)

# One request replays at most this many letters; calling again continues with the rest
# (replayed letters are skipped unless includeReplayed).
MAX_REPLAY = 500
# dead_letters.id is a bigint: a larger id cannot name one (and PostgreSQL would refuse it).
MAX_BIGINT = 2**63 - 1

router = APIRouter(prefix="/dlq", tags=["dead letters"], responses=COMMON_ERRORS)


@router.get("", response_model=DeadLetterPage)
async def list_dead_letters(
    state: State,
    principal: Principal,
    stage: Annotated[DlqStage | None, Query(description="Only this stage's")] = None,
    job_id: Annotated[
        str | None, Query(alias="jobId", min_length=1, max_length=100, description="Only a job's")
    ] = None,
    error_class: Annotated[
        str | None,
        Query(alias="errorClass", min_length=1, max_length=500, description="e.g. PermanentError"),
    ] = None,
    limit: Annotated[int, Query(ge=1, description="Page size (at most MAX_PAGE_SIZE)")] = 20,
    cursor: Annotated[str | None, Query(max_length=500, description="nextCursor")] = None,
) -> DeadLetterPage:
    """Dead letters, newest first, one page at a time."""
    if limit > state.settings.max_page_size:
        raise invalid("limit", f"must be at most {state.settings.max_page_size}")
    try:
        after = _decode(cursor) if cursor is not None else None
    except BadCursor as exc:
        raise invalid("cursor", str(exc)) from exc
    # One extra row tells whether another page exists without a COUNT.
    rows = await dlq_queries.list_dead_letters(
        state.pool,
        stage=stage.value if stage else None,
        job_id=job_id,
        error_class=error_class,
        limit=limit + 1,
        after=after,
    )
    page = rows[:limit]
    more = len(rows) > limit
    next_cursor = encode_cursor(page[-1]["failed_at"], str(page[-1]["id"])) if more else None
    return DeadLetterPage(dead_letters=[_view(r) for r in page], next_cursor=next_cursor)


def _view(row: DeadLetterRecord) -> DeadLetterView:
    return DeadLetterView(
        id=row["id"],
        stage=row["stage"],
        job_id=row["job_id"],
        error_class=row["error_class"],
        message=row["message"],
        retryable=row["retryable"],
        topic=row["topic"],
        partition=row["partition"],
        offset=row["offset"],
        original_topic=row["original_topic"],
        replay_to=replay_to(row["topic"], row["replay_topic"]),
        failed_at=row["failed_at"],
        replayed_at=row["replayed_at"],
        replay_count=row["replay_count"],
    )


def replay_to(dlq_topic: str, replay_topic: str | None) -> str | None:
    """Where a letter of ``dlq_topic`` recorded with ``replay_topic`` may go: that topic only
    when it is one of the letter's stage's replay targets (its inputs, or its first delay
    topic). A letter recorded with any other (a producer's pod.original.topic copied by an
    older runner, pod.control say) is not replayable."""
    return replay_topic if replay_topic in replay_targets_of(dlq_topic) else None


@router.post(
    "/replay",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=ReplayResult,
    responses=error_responses(400, 403, 404),
)
async def replay_dead_letters(body: ReplayRequest, state: State, principal: Admin) -> ReplayResult:
    """Re-produce one dead letter, a job's or a stage's onto their stage inputs (admin key).

    Only letters not replayed yet, unless ``includeReplayed``; answers once the broker
    acknowledged every copy.
    """
    return await _replay(state, body)


def _decode(cursor: str) -> tuple[datetime, int]:
    failed_at, raw_id = decode_cursor(cursor)
    # ASCII digits only (str.isdigit() also takes "²", which int() refuses), within bigint.
    if not (raw_id.isascii() and raw_id.isdigit()) or int(raw_id) > MAX_BIGINT:
        raise BadCursor("is not a valid page cursor")
    return failed_at, int(raw_id)


def replay_message(value: bytes | None) -> tuple[bytes, str | None] | None:
    """(bytes to produce, job id in them) for a letter's value; None if nothing replayable.

    The value must be a JSON object (an event envelope): its ``attempt`` is reset to 0 so the
    stage starts over, everything else, ``event_id`` included, is kept as it was.
    """
    if not value:
        return None
    try:
        data = json.loads(value)
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    data["attempt"] = 0
    job_id = data.get("job_id")
    return json.dumps(data, separators=(",", ":")).encode(), (
        job_id if isinstance(job_id, str) and job_id else None
    )


async def _replay(state: ApiState, body: ReplayRequest) -> ReplayResult:
    # The letters stay locked while their copies are produced: a concurrent replay of the same
    # letters waits, then finds them replayed. If the commit fails after the broker acked, a
    # later replay produces the same event ids again, which consumers recognise as duplicates.
    async with state.pool.connection() as conn, conn.transaction():
        if body.id is not None and not await dlq_queries.dead_letter_exists(conn, body.id):
            raise ApiError(404, "not_found", f"dead letter {body.id} not found")
        letters = await dlq_queries.lock_for_replay(
            conn,
            dead_letter_id=body.id,
            job_id=body.job_id,
            stage=body.stage.value if body.stage else None,
            include_replayed=body.include_replayed,
            limit=MAX_REPLAY,
        )
        ready: list[tuple[ReplayCandidate, bytes, str | None]] = []
        skipped: list[int] = []
        for letter in letters:
            target = replay_to(letter.topic, letter.replay_topic)
            message = replay_message(letter.replay_value) if target else None
            if message is None:
                if letter.replay_topic and not target:
                    logger.warning(
                        "dead letter not replayed: target is not its stage's input id=%d "
                        "dlq=%s replay_topic=%s",
                        letter.id,
                        letter.coordinates,
                        letter.replay_topic[:200],
                    )
                skipped.append(letter.id)
            else:
                ready.append((letter, message[0], letter.job_id or message[1]))
        if body.id is not None and skipped:
            raise invalid(
                "id",
                f"dead letter {body.id} has nothing replayable "
                "(its record is not a JSON event, or it names no input of its stage to go to)",
            )
        targets = [
            ReplayTarget(
                id=letter.id,
                job_id=key,
                dead_letter=letter.coordinates,
                replay_to=str(letter.replay_topic),
            )
            for letter, _value, key in ready
        ]
        if body.dry_run:
            return ReplayResult(replayed=0, ids=[], skipped=skipped, targets=targets)
        replayed = await _produce(state, ready)
        await dlq_queries.mark_replayed(conn, replayed)
    for item in replayed:
        letter = item.candidate
        logger.info(
            "dead letter replayed id=%d job_id=%s dlq=%s replay_topic=%s partition=%d offset=%d",
            letter.id,
            letter.job_id or "-",
            letter.coordinates,
            letter.replay_topic,
            item.partition,
            item.offset,
        )
    if skipped:
        logger.warning("dead letters not replayable count=%d ids=%s", len(skipped), skipped)
    return ReplayResult(
        replayed=len(replayed),
        ids=[r.candidate.id for r in replayed],
        skipped=skipped,
        targets=targets,
    )


async def _produce(
    state: ApiState, ready: list[tuple[ReplayCandidate, bytes, str | None]]
) -> list[Replayed]:
    """Produce every copy and wait for all acks; 503 (nothing marked) if any is missing."""
    if not ready:
        return []
    timeout = state.settings.produce_timeout_s

    async def send_all() -> list[Message]:
        futures = []
        for letter, value, key in ready:
            assert letter.replay_topic is not None  # replay_message() was only asked otherwise
            headers: list[tuple[str, str | bytes | None]] = [
                (hdr.REPLAY, b"true"),
                (hdr.REPLAY_OF, letter.coordinates.encode()),
            ]
            futures.append(
                await state.producer.enqueue(
                    letter.replay_topic,
                    value,
                    key=key.encode() if key else None,
                    headers=headers,
                )
            )
        return list(await asyncio.gather(*futures))

    try:
        acked = await asyncio.wait_for(send_all(), timeout)
    except (TimeoutError, KafkaException) as exc:
        reason = (
            f"no acknowledgement from Kafka within {timeout:g}s"
            if isinstance(exc, TimeoutError)
            else f"Kafka refused the message: {exc.args[0].name()}"
        )
        logger.error("dead letter replay failed count=%d reason=%s", len(ready), reason)
        raise ApiError(
            503,
            "kafka_unavailable",
            f"not replayed: {reason}. Some copies may still arrive; replaying again is safe "
            "(the copies keep their event ids).",
            headers={"Retry-After": "5"},
        ) from exc
    return [
        Replayed(
            candidate=letter, partition=msg.partition() or 0, offset=msg.offset() or 0, job_id=key
        )
        for (letter, _, key), msg in zip(ready, acked, strict=True)
    ]
