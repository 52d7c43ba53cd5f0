"""Live progress as Server-Sent Events: ``GET /jobs/{id}/events`` (one job, until it ends) and
``GET /events`` (every job, with filters, until the client leaves).

Each event is one entry of a job's log as the monitor folded it, with the log's sequence number
as its SSE ``id``. Entries go out in the order in which they become final (their transaction,
then seq; see ``job_events.final_after``), not in seq order: two writers commit out of seq
order, and a stream that went by seq would skip the entry committed last. A client that
reconnects sends ``Last-Event-ID`` (browsers do on their own) and gets what it missed, nothing
twice.

A stream waits on PostgreSQL's notifications (``services.api.feed``) and holds no pooled
connection in between; each caller and the process have a cap on open streams.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Path, Query, Request
from fastapi.sse import EventSourceResponse, ServerSentEvent

from services.api import queries
from services.api.auth import Principal
from services.api.errors import ApiError, invalid
from services.api.feed import Subscription
from services.api.schemas.common import COMMON_ERRORS, error_responses
from services.api.state import ApiState, State
from shared.adapters.store import job_events
from shared.adapters.store.job_events import Position

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


async def _stream_slot(request: Request, state: State, principal: Principal) -> AsyncIterator[None]:
    """One of the caller's and the process's stream slots, held until the stream ends; the
    key is checked first (an unknown caller gets its 401, not a 429 or a job lookup)."""
    caller = principal or f"addr-{request.client.host if request.client else 'unknown'}"
    with state.streams.admit(caller):
        yield


StreamSlot = Annotated[None, Depends(_stream_slot)]


async def _known_job(
    job_id: Annotated[str, Path(min_length=1, max_length=100)], state: State, slot: StreamSlot
) -> str:
    # The key first (the slot's ``principal``): a caller without one must not learn which ids
    # exist.
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


def _sse(row: job_events.LogRow) -> ServerSentEvent:
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


async def _next(state: ApiState, position: Position, **filters: Any) -> job_events.Page:
    async with state.stream_reads, state.pool.connection() as conn:
        return await job_events.final_after(conn, position, **filters)


async def _position(state: ApiState, start: int | None) -> Position:
    """Where a stream starts: after the entry the client saw last, or (None) now."""
    async with state.stream_reads, state.pool.connection() as conn:
        if start is None:
            return await job_events.now(conn)
        return await job_events.position_of(conn, start)


# While an entry stays held back, a stream looks again after EVENTS_POLL_S, doubled at most this
# many times: a writing transaction left open somewhere must not make every stream a poller.
_HELD_DOUBLINGS = 3


async def _wait(state: ApiState, sub: Subscription, page: job_events.Page, held: int) -> None:
    """Until the log may hold more for this stream: a notification, or a short poll while an
    entry is held back behind an older transaction (its commit may notify another job; the
    ``held``-th time in a row) or while the feed is down, else the slow safety re-check."""
    settings = state.settings
    if not state.feed.listening:
        timeout = settings.events_poll_s
    elif page.held_back:
        timeout = settings.events_poll_s * 2 ** min(max(held - 1, 0), _HELD_DOUBLINGS)
    else:
        timeout = settings.events_recheck_s
    await sub.wait(timeout)


@router.get(
    "/jobs/{job_id}/events",
    response_class=EventSourceResponse,
    responses=error_responses(404, 429),
    summary="Follow one job: its events as they are folded, then `end` when it is over",
)
async def job_events_stream(
    job_id: KnownJob, state: State, start: ResumeFrom
) -> AsyncIterator[ServerSentEvent]:
    """The job's log, then live: one event per entry (``event`` = its type), and a last
    ``end`` event with the job's final status."""
    position = job_events.START if start is None else await _position(state, start)
    held = 0
    with state.feed.subscribe(job_id) as sub:
        while True:
            page = await _next(state, position, job_id=job_id)
            position = page.position
            held = held + 1 if page.held_back and not page.rows else 0
            for row in page.rows:
                yield _sse(row)
            if page.full:
                continue  # more may be waiting
            if not page.held_back:
                async with state.stream_reads:
                    job = await queries.get_job(state.pool, job_id)
                if job is not None and job.status in TERMINAL:
                    # The job's last entries commit with its status (or before): one more
                    # read after seeing it ended hands out any that came meanwhile.
                    last = await _next(state, position, job_id=job_id)
                    if not last.rows and not last.held_back:
                        yield ServerSentEvent(
                            event="end", data={"jobId": job_id, "status": job.status}
                        )
                        return
                    continue
            await _wait(state, sub, page, held)


@router.get(
    "/events",
    response_class=EventSourceResponse,
    responses=error_responses(429),
    summary="Follow every job: events as they are folded, optionally by type and level",
)
async def events_stream(
    slot: StreamSlot,
    state: State,
    start: ResumeFrom,
    level: Level,
    type: Annotated[
        list[str] | None, Query(description="Only these event types, e.g. product.published")
    ] = None,
) -> AsyncIterator[ServerSentEvent]:
    """Every job's log entries from now (or after ``Last-Event-ID`` / ``after``), live."""
    position = await _position(state, start)
    held = 0
    with state.feed.subscribe(None) as sub:
        while True:
            page = await _next(state, position, types=type or None, level=level)
            position = page.position
            held = held + 1 if page.held_back and not page.rows else 0
            for row in page.rows:
                yield _sse(row)
            if not page.full:
                await _wait(state, sub, page, held)
