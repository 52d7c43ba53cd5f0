"""``/topics``: flow inspection without Docker (admin): the broker's topics with each group's
lag, and the last messages of a topic or partition, decoded (work in services/api/topics.py)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
from collections.abc import Callable
from typing import Annotated, TypeVar

from confluent_kafka import KafkaException
from fastapi import APIRouter, Path, Query

from services.api import queries, topics
from services.api.auth import Admin
from services.api.errors import ApiError, invalid
from services.api.schemas.common import COMMON_ERRORS, error_responses
from services.api.schemas.topics import (
    GroupPartitionView,
    GroupView,
    HeaderView,
    MessageList,
    MessageView,
    PartitionView,
    TopicList,
    TopicView,
)
from services.api.state import ApiState, State

logger = logging.getLogger(__name__)
router = APIRouter(prefix="/topics", tags=["topics"], responses=COMMON_ERRORS)
_T = TypeVar("_T")
# Kafka's own rule for topic names.
TOPIC_NAME = r"^[A-Za-z0-9._-]{1,249}$"


async def _blocking(state: ApiState, what: str, call: Callable[[], _T]) -> _T:
    """Run a blocking librdkafka call in a thread, answering 503 past TOPICS_TIMEOUT_S (the
    thread ends soon after: each of its calls has that timeout too)."""
    deadline = state.settings.topics_timeout_s
    try:
        return await asyncio.wait_for(asyncio.to_thread(call), deadline + 1)
    except (TimeoutError, concurrent.futures.TimeoutError):
        reason = f"the broker did not answer within {deadline:g}s"
    except KafkaException as exc:
        reason = f"the broker refused: {exc.args[0].name() if exc.args else 'error'}"
    logger.warning("topics not read what=%s reason=%s", what, reason)
    raise ApiError(503, "kafka_unavailable", reason, headers={"Retry-After": "5"})


@router.get("", response_model=TopicList, responses=error_responses(403))
async def list_topics(state: State, principal: Admin) -> TopicList:
    """Every topic on the broker (the engine's and any other): partitions with their earliest
    and latest offsets, and each consumer group's committed offsets and lag (admin key)."""
    config = state.settings.client_config()
    timeout = state.settings.topics_timeout_s
    found = await _blocking(
        state, "offsets", lambda: topics.topic_offsets(config, timeout_s=timeout)
    )
    return TopicList(
        topics=[
            TopicView(
                name=t.name,
                registered=t.registered,
                messages=sum(p.latest - p.earliest for p in t.partitions),
                partitions=[PartitionView(**vars(p)) for p in t.partitions],
                groups=[
                    GroupView(
                        group=g.group,
                        lag=g.lag,
                        partitions=[GroupPartitionView(**vars(p)) for p in g.partitions],
                    )
                    for g in t.groups
                ],
            )
            for t in found
        ]
    )


@router.get("/{name}/messages", response_model=MessageList, responses=error_responses(403, 404))
async def list_messages(
    name: Annotated[str, Path(pattern=TOPIC_NAME)],
    state: State,
    principal: Admin,
    partition: Annotated[int | None, Query(ge=0, le=100_000)] = None,
    limit: Annotated[int, Query(ge=1, le=topics.MAX_MESSAGES)] = 20,
    before: Annotated[
        int | None, Query(ge=0, description="Only messages before this offset (with partition)")
    ] = None,
) -> MessageList:
    """The last messages of a topic (or one partition), newest first, with key, headers,
    timestamp and offset, each value decoded against the event schemas (admin key). Reading
    joins no consumer group and commits nothing."""
    if before is not None and partition is None:
        raise invalid("before", "needs a partition (offsets are per partition)")
    config = state.settings.client_config()
    timeout = state.settings.topics_timeout_s

    def read() -> topics.MessagePage:
        return topics.read_messages(
            config, name, partition=partition, limit=limit, before=before, timeout_s=timeout
        )

    try:
        page = await _blocking(state, "messages", read)
    except topics.TopicNotFound as exc:
        raise ApiError(404, "not_found", str(exc)) from None
    known = await queries.known_jobs(state.pool, topics.candidates(page.messages))
    return MessageList(
        topic=name,
        partition=partition,
        next_before=page.next_before,
        messages=[
            MessageView(
                partition=m.partition,
                offset=m.offset,
                timestamp=m.timestamp,
                key=m.key,
                headers=[HeaderView(name=h.name, value=h.value) for h in m.headers],
                headers_omitted=m.headers_cut,
                size=m.size,
                type=m.event_type,
                event_id=m.event_id,
                job_id=m.job_id,
                payload=m.payload,
                invalid=m.invalid,
                raw=m.raw,
                truncated=m.truncated,
                job_link=next((c for c in m.job_candidates() if c in known), None),
            )
            for m in page.messages
        ],
    )
