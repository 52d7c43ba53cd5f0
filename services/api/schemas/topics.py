"""``/topics``: the broker's topics, offsets and lag, and a topic's last messages (admin)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field

from services.api.schemas.common import _Wire


class PartitionView(_Wire):
    """One partition: ``latest`` is the offset the next message gets."""

    partition: int
    earliest: int
    latest: int


class GroupPartitionView(_Wire):
    """A consumer group's committed offset on one partition, and how many messages it is behind."""

    partition: int
    committed: int
    lag: int


class GroupView(_Wire):
    """A consumer group that committed offsets on the topic."""

    group: str
    lag: int = Field(description="Messages behind the end, over its partitions")
    partitions: list[GroupPartitionView]


class TopicView(_Wire):
    """One topic as the broker has it."""

    name: str
    registered: bool = Field(description="One of the engine's topics (the registry's)")
    messages: int = Field(description="Messages kept: latest - earliest, over the partitions")
    partitions: list[PartitionView]
    groups: list[GroupView]


class TopicList(_Wire):
    """``GET /topics`` answer."""

    topics: list[TopicView]


class HeaderView(_Wire):
    name: str
    value: str | None = Field(description="As UTF-8 text (undecodable bytes replaced), capped")


class MessageView(_Wire):
    """One message; its value decoded against the event schemas when it is an event."""

    partition: int
    offset: int
    timestamp: datetime | None
    key: str | None = Field(description="As text, capped")
    headers: list[HeaderView]
    headers_omitted: int = Field(description="Headers past the cap, not shown")
    size: int = Field(description="The value's size in bytes")
    type: str | None = Field(description="The event's type when the value is a valid event")
    event_id: str | None
    job_id: str | None = Field(description="The event's job id")
    payload: Any = Field(description="The event's payload (null when invalid or too large)")
    invalid: str | None = Field(description="Why the value is not a valid event")
    raw: str | None = Field(description="The value as text (capped) when it is not shown decoded")
    truncated: bool
    job_link: str | None = Field(description="A job of this deployment the message belongs to")


class MessageList(_Wire):
    """``GET /topics/{name}/messages`` answer: newest first."""

    topic: str
    partition: int | None
    messages: list[MessageView]
    next_before: int | None = Field(
        description="With a partition: pass as `before` for the older messages"
    )
