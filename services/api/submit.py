"""Job submission: the request becomes a JobRequested event, durable in Kafka before the 202.

Order matters: the event is produced and acknowledged by the broker first; the ``queued`` row
is written after. Kafka is the source of truth, so a database hiccup after the ack still
answers 202 (the monitor folds the event into the same row later), while a broker that does
not ack answers 503 and nothing is claimed to be accepted.

With an ``Idempotency-Key`` the key is claimed in ``api_idempotency`` first. The job id and the
event id are fixed by the key, so a retry after a crash or a 503 produces the same event again
(recognisable as a duplicate by its event_id) rather than a second job.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import uuid
import weakref
from dataclasses import dataclass

from opentelemetry.trace import SpanKind
from psycopg import Error as DbError

from services.api import queries
from services.api.errors import ApiError, invalid
from services.api.producer import BrokerUnavailable
from services.api.schemas.jobs import JobRequest
from services.api.settings import ApiSettings
from services.api.state import ApiState
from shared.contract.events import JobRequested, JobRequestedPayload, Priority
from shared.contract.topics import JOBS_REQUESTED
from shared.platform import tracing

logger = logging.getLogger(__name__)

# Event ids of keyed submissions derive from the scoped key, so a re-produce repeats the id.
_IDEMPOTENCY_NS = uuid.UUID("0b6a3c52-8f0e-4f59-9d7e-3c1a2b4e5f60")
MAX_KEY_LENGTH = 200

# One lock per key in flight in this process: two concurrent requests with the same key
# produce once. Across API processes a race can produce twice, with the same event id.
_key_locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()


def request_hash(request: JobRequest) -> str:
    """A digest of the normalised request: equal requests hash equal whatever their spacing."""
    canonical = json.dumps(request.canonical(), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def scoped_key(key: str, principal: str | None) -> str:
    """The ledger key: per API key when authentication is on, so callers cannot collide."""
    return f"{principal}:{key}" if principal else key


def check_key(key: str) -> None:
    """Reject keys that are empty, too long or not printable ASCII."""
    if not key.strip() or len(key) > MAX_KEY_LENGTH or not key.isascii() or not key.isprintable():
        raise invalid("Idempotency-Key", f"must be 1..{MAX_KEY_LENGTH} printable ASCII characters")


def build_payload(
    request: JobRequest, principal: str | None, settings: ApiSettings
) -> JobRequestedPayload:
    """The event payload (snake_case) for a validated request: a numeric priority becomes
    its band (by the settings' rule) and is kept as the job's level within it."""
    given = request.priority
    channels = request.channels or settings.publish_channels
    off = [c for c in channels if c not in settings.publish_channels]
    if off:
        raise invalid(
            "channels",
            f"{', '.join(off)} not enabled here; the channels are "
            f"{', '.join(settings.publish_channels)}",
        )
    band = given if isinstance(given, Priority) else settings.band_for(given)
    spec = request.spec(band, list(channels), review=settings.review_default)
    return JobRequestedPayload(**dict(spec), submitted_by=principal)


@dataclass(frozen=True)
class Accepted:
    """A job accepted: its id, and whether its key named a job accepted before (nothing was
    produced this time)."""

    job_id: str
    replayed: bool = False


async def submit_job(
    state: ApiState, request: JobRequest, *, principal: str | None, idempotency_key: str | None
) -> str:
    """Accept one job; return its id once its event is acknowledged by the broker."""
    accepted = await accept_job(
        state, request, principal=principal, idempotency_key=idempotency_key
    )
    return accepted.job_id


async def accept_job(
    state: ApiState, request: JobRequest, *, principal: str | None, idempotency_key: str | None
) -> Accepted:
    """As :func:`submit_job`, saying whether the key's job had been accepted already."""
    if request.count > state.settings.max_images_per_job:
        raise invalid("count", f"must be at most {state.settings.max_images_per_job}")
    payload = build_payload(request, principal, state.settings)
    if idempotency_key is None:
        event = _event(str(uuid.uuid4()), uuid.uuid4(), payload)
        await _produce(state, event)
        await _record(state, event)
        return Accepted(event.job_id)

    check_key(idempotency_key)
    key = scoped_key(idempotency_key, principal)
    lock = _key_locks.setdefault(key, asyncio.Lock())
    async with lock:
        record = await queries.claim_idempotency_key(
            state.pool, key, request_hash(request), str(uuid.uuid4())
        )
        if record.request_hash != request_hash(request):
            raise invalid("Idempotency-Key", "Idempotency-Key reused with a different request")
        if record.produced:
            logger.info("idempotent replay job_id=%s", record.job_id)
            return Accepted(record.job_id, replayed=True)
        if not record.created:
            logger.warning("re-producing unacknowledged keyed job job_id=%s", record.job_id)
        event = _event(record.job_id, uuid.uuid5(_IDEMPOTENCY_NS, key), payload)
        await _produce(state, event)
        try:
            await queries.mark_produced(state.pool, key)
        except (DbError, OSError, TimeoutError) as exc:
            # Accepted all the same; a replay of this key re-produces the same event id.
            logger.warning(
                "idempotency key not marked produced job_id=%s error=%s",
                record.job_id,
                type(exc).__name__,
            )
        await _record(state, event)
        return Accepted(record.job_id)


def _event(job_id: str, event_id: uuid.UUID, payload: JobRequestedPayload) -> JobRequested:
    return JobRequested(event_id=event_id, job_id=job_id, producer="api", payload=payload)


async def _produce(state: ApiState, event: JobRequested) -> None:
    job_id, payload = event.job_id, event.payload
    topic = JOBS_REQUESTED[payload.priority]
    attributes: dict[str, str | int] = {"pod.job_id": job_id, "messaging.destination.name": topic}
    try:
        # The job's trace starts here; its context rides on the message to every stage.
        with tracing.span("job submit", kind=SpanKind.PRODUCER, attributes=attributes):
            await state.producer.send(
                topic,
                event.to_json(),
                key=job_id,
                timeout=state.settings.produce_timeout_s,
                headers=tracing.headers_now(),
            )
    except BrokerUnavailable as exc:
        logger.error("job not accepted job_id=%s topic=%s reason=%s", job_id, topic, exc)
        raise ApiError(
            503,
            "kafka_unavailable",
            f"the job was not accepted: {exc}. It may still be queued later; retry with the "
            "same Idempotency-Key to avoid a duplicate.",
            headers={"Retry-After": "5"},
        ) from exc
    logger.info(
        "job accepted job_id=%s topic=%s event_id=%s count=%d",
        job_id,
        topic,
        event.event_id,
        payload.count,
    )


async def _record(state: ApiState, event: JobRequested) -> None:
    job_id = event.job_id
    try:
        await queries.insert_queued_job(state.pool, event)
    except (DbError, OSError, TimeoutError) as exc:
        # The event is durable in Kafka; the monitor will fold it into this row later.
        logger.warning(
            "job row not written after ack job_id=%s error=%s", job_id, type(exc).__name__
        )
