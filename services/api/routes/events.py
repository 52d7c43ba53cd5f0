"""Live progress as Server-Sent Events: ``GET /jobs/{id}/events`` (one job, until it ends) and
``GET /events`` (every job, with filters, until the client leaves).

Each event is one entry of a job's log as the monitor folded it, with the log's sequence number
as its SSE ``id``. A client that reconnects sends ``Last-Event-ID`` (browsers do on their own)
and gets what it missed, nothing twice. The streams poll PostgreSQL every ``EVENTS_POLL_S``
without holding a connection in between, so an idle stream costs one small query per poll.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Path, Query
from fastapi.sse import EventSourceResponse, ServerSentEvent

from services.api import queries
from services.api.auth import Principal
from services.api.errors import ApiError, invalid
from services.api.schemas import COMMON_ERRORS, error_responses
from services.api.state import ApiState, State
from shared.store import job_events

router = APIRouter(tags=["events"], responses=COMMON_ERRORS)

TERMINAL = {"completed", "partial", "failed"}
LEVELS = {"info", "warning", "error"}


# Checked as dependencies: they run before the stream's 200 is sent, so a bad request still
# gets its 4xx.


def _resume_from(
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
    after: Annotated[int | None, Query(ge=0, description="Start after this event id")] = None,
) -> int | None:
    """Where a stream starts: after ``Last-Event-ID`` (a reconnect), else ``after``; None:
    the stream's own default."""
    if last_event_id is not None and last_event_id.strip():
        raw = last_event_id.strip()
        if not raw.isdigit() or len(raw) > 18:
            raise invalid("Last-Event-ID", "must be the id of an event of this stream")
        return int(raw)
    return after


async def _known_job(
    job_id: Annotated[str, Path(min_length=1, max_length=100)], state: State, principal: Principal
) -> str:
    # The key first (``principal``): a caller without one must not learn which ids exist.
    if await queries.get_job(state.pool, job_id) is None:
        raise ApiError(404, "not_found", f"job {job_id} not found")
    return job_id


def _level(
    level: Annotated[str | None, Query(description="Only info, warning or error")] = None,
) -> str | None:
    if level is not None and level not in LEVELS:
        raise invalid("level", f"must be one of {', '.join(sorted(LEVELS))}")
    return level


ResumeFrom = Annotated[int | None, Depends(_resume_from)]
KnownJob = Annotated[str, Depends(_known_job)]
Level = Annotated[str | None, Depends(_level)]


def _sse(row: dict[str, Any]) -> ServerSentEvent:
    return ServerSentEvent(
        id=str(row["seq"]),
        event=row["type"],
        data={
            "seq": row["seq"],
            "eventId": str(row["event_id"]),
            "jobId": row["job_id"],
            "type": row["type"],
            "level": row["level"],
            "message": row["message"],
            "producer": row["producer"],
            "occurredAt": row["occurred_at"].isoformat(),
            "data": row["data"],
        },
    )


async def _rows(state: ApiState, after: int, **filters: Any) -> list[dict[str, Any]]:
    async with state.pool.connection() as conn:
        return await job_events.after(conn, after, **filters)


@router.get(
    "/jobs/{job_id}/events",
    response_class=EventSourceResponse,
    responses=error_responses(404),
    summary="Follow one job: its events as they are folded, then `end` when it is over",
)
async def job_events_stream(
    job_id: KnownJob, state: State, principal: Principal, start: ResumeFrom
) -> AsyncIterator[ServerSentEvent]:
    """The job's log, then live: one event per entry (``event`` = its type), and a last
    ``end`` event with the job's final status."""
    seen = start or 0

    async def stream() -> AsyncIterator[ServerSentEvent]:
        nonlocal seen
        while True:
            rows = await _rows(state, seen, job_id=job_id)
            for row in rows:
                seen = row["seq"]
                yield _sse(row)
            if rows:
                continue  # more may be waiting
            job = await queries.get_job(state.pool, job_id)
            if job is not None and job["status"] in TERMINAL:
                # The last entries may have been folded with the status: drained above.
                if not await _rows(state, seen, job_id=job_id, limit=1):
                    yield ServerSentEvent(
                        event="end", data={"jobId": job_id, "status": job["status"]}
                    )
                    return
                continue
            await asyncio.sleep(state.settings.events_poll_s)

    async for event in stream():
        yield event


@router.get(
    "/events",
    response_class=EventSourceResponse,
    summary="Follow every job: events as they are folded, optionally by type and level",
)
async def events_stream(
    state: State,
    principal: Principal,
    start: ResumeFrom,
    level: Level,
    type: Annotated[
        list[str] | None, Query(description="Only these event types, e.g. product.published")
    ] = None,
) -> AsyncIterator[ServerSentEvent]:
    """Every job's log entries from now (or after ``Last-Event-ID`` / ``after``), live."""
    if start is None:
        async with state.pool.connection() as conn:
            seen = await job_events.last_seq(conn)
    else:
        seen = start
    while True:
        rows = await _rows(state, seen, types=type or None, level=level)
        for row in rows:
            seen = row["seq"]
            yield _sse(row)
        if not rows:
            await asyncio.sleep(state.settings.events_poll_s)
