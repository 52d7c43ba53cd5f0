"""The topic registry: every topic of the pipeline, its layout, and idempotent creation.

Each stage has retry (delay) topics ``<family>.retry.<level>`` and a
dead-letter topic ``<family>.dlq``, where the family is the stage's input topic (the three priority
topics of the generator share the family ``jobs.requested``).
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Annotated, Any, Literal

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewPartitions, NewTopic  # type: ignore[attr-defined]
from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import NoDecode

from shared.contract.events import (
    EVENT_TYPES,
    ControlCommand,
    Event,
    ImageGenerated,
    JobRequested,
    PoolScaled,
    PrintifyWebhookReceived,
    Priority,
    ProductApproved,
    ProductCreated,
    ProductPublished,
    ProductPublishing,
    ProductRepriced,
    ProductWithdrawn,
    SellerDecision,
    StageFailed,
    WorkerExited,
    WorkerHeartbeat,
)
from shared.contract.sales_channels import DEFAULT_CHANNEL as DEFAULT_CHANNEL
from shared.contract.sales_channels import DIRECT_CHANNELS
from shared.platform.errors import ConfigError
from shared.platform.settings import PodSettings

logger = logging.getLogger(__name__)

DAY_MS = 24 * 3600 * 1000

JOBS_REQUESTED = {p: f"jobs.requested.{p.value}" for p in Priority}
# Highest band first: the order in which the generator prefers its inputs.
JOBS_BY_PRIORITY = [
    JOBS_REQUESTED[Priority.HIGH],
    JOBS_REQUESTED[Priority.NORMAL],
    JOBS_REQUESTED[Priority.LOW],
]
IMAGES_GENERATED = "images.generated"
PRODUCTS_CREATED = "products.created"
PUBLISHED = "published"
HEARTBEATS = "workers.heartbeat"
CONTROL = "pod.control"
# Printify's webhook calls, as the API received them (signature checked).
PRINTIFY_WEBHOOKS = "printify.webhooks"
# A seller's decisions about a job (approve, reject, regenerate, cancel, unpublish, delete,
# reprice), produced by the API alone: every stage a decision concerns reads them in its own
# group and acts once per decision_id (decision §41). A side topic: the chain of the pipeline
# topics is unchanged.
SELLER_DECISIONS = "seller.decisions"

RETRY_LEVELS = 3


@dataclass(frozen=True)
class Stage:
    """A consumer stage: its inputs and the family that names its retry and DLQ topics.

    ``service`` is the package under ``services/`` that runs it (the stage's name unless
    several stages share one package, as the publishers of the sales channels do), and
    ``channel`` the sales channel a publisher stage publishes to."""

    name: str
    inputs: tuple[str, ...]
    family: str
    service: str = ""
    channel: str | None = None
    # The topics its handler produces to, besides its delay and dead-letter topics and the
    # heartbeats, which every stage sends.
    outputs: tuple[str, ...] = ()
    # It puts a stage.failed report of its own on its dead-letter topic (a failed part of a job).
    reports_on_dlq: bool = False
    # Inputs the runner serves ahead of its retries and of every other input, when the stage
    # reads them: a seller's decisions are few and cheap, and a cancel must not wait behind a
    # backlog of renders or publications (decision "decisions reach a stage ahead of the bands").
    served_first: tuple[str, ...] = (SELLER_DECISIONS,)

    @property
    def module(self) -> str:
        """The module a process of this stage runs (``python -m``)."""
        return f"services.{self.service or self.name}"

    @property
    def dlq(self) -> str:
        return f"{self.family}.dlq"

    def retry_topic(self, level: int) -> str:
        """Delay topic for the given retry level (1-based)."""
        return f"{self.family}.retry.{level}"

    @property
    def retry_topics(self) -> tuple[str, ...]:
        return tuple(self.retry_topic(level) for level in range(1, RETRY_LEVELS + 1))


# The seller's decisions: a regenerate renders an image again, a cancel stops the job's renders.
GENERATOR = Stage(
    "generator",
    (*JOBS_BY_PRIORITY, SELLER_DECISIONS),
    "jobs.requested",
    outputs=(IMAGES_GENERATED,),
)
# Reports each failed product type of a job on its dead-letter topic.
PRINTIFY = Stage(
    "printify",
    # The seller's decisions too: it approves, deletes and prices again what it made.
    (IMAGES_GENERATED, SELLER_DECISIONS),
    IMAGES_GENERATED,
    outputs=(PRODUCTS_CREATED,),
    reports_on_dlq=True,
)

# Sales channels, each published to by its own consumer group of products.created, with its own
# retry and dead-letter topics: "printify" publishes through the Printify shop's own channel
# (and answers Printify's webhooks for the engine's storefront); the others list directly, one
# for each adapter registered in shared.contract.sales_channels.
CHANNELS = (DEFAULT_CHANNEL, *DIRECT_CHANNELS)
PUBLISHER = Stage(
    "publisher",
    # The seller's decisions: its listings taken down (cancel, unpublish, delete).
    (PRODUCTS_CREATED, PRINTIFY_WEBHOOKS, SELLER_DECISIONS),
    PRODUCTS_CREATED,
    service="publisher",
    channel=DEFAULT_CHANNEL,
    outputs=(PUBLISHED,),
    # Its publication watcher reports each listing Printify refused.
    reports_on_dlq=True,
)
PUBLISHERS = {
    DEFAULT_CHANNEL: PUBLISHER,
    **{
        c: Stage(
            f"publisher_{c}",
            (PRODUCTS_CREATED, SELLER_DECISIONS),
            f"publish.{c}",
            service="publisher",
            channel=c,
            outputs=(PUBLISHED,),
            # Its publication watcher reports each listing the channel refused after review.
            reports_on_dlq=True,
        )
        for c in CHANNELS
        if c != DEFAULT_CHANNEL
    },
}
_WORKERS = (GENERATOR, PRINTIFY, *PUBLISHERS.values())
# The monitor reads the pipeline topics, the stages' dead letters and the heartbeats.
MONITOR = Stage(
    "monitor",
    (
        *JOBS_BY_PRIORITY,
        IMAGES_GENERATED,
        PRODUCTS_CREATED,
        PUBLISHED,
        *(s.dlq for s in _WORKERS),
        # Another stage's delay topics tell the monitor a job is waiting for a retry.
        *(t for s in _WORKERS for t in s.retry_topics),
        HEARTBEATS,
        # The seller's decisions: in the job's log, and its review's state.
        SELLER_DECISIONS,
        # Printify's webhook calls: its orders are what sells.
        PRINTIFY_WEBHOOKS,
        # Its own dead letters too, so that they are listed and replayable like the others'.
        "monitor.dlq",
    ),
    "monitor",
)
STAGES = {s.name: s for s in (*_WORKERS, MONITOR)}

# What the services produce on each pipeline topic. The delay and dead-letter topics carry what
# their stage reads (shared.pipeline.asyncapi works that out from STAGES).
TOPIC_EVENTS: dict[str, tuple[type[Event], ...]] = {
    **{t: (JobRequested,) for t in JOBS_BY_PRIORITY},
    IMAGES_GENERATED: (ImageGenerated,),
    PRODUCTS_CREATED: (ProductCreated, ProductApproved, ProductWithdrawn, ProductRepriced),
    PUBLISHED: (ProductPublishing, ProductPublished, ProductWithdrawn, ProductRepriced),
    SELLER_DECISIONS: (SellerDecision,),
    HEARTBEATS: (WorkerHeartbeat, WorkerExited, PoolScaled),
    CONTROL: (ControlCommand,),
    PRINTIFY_WEBHOOKS: (PrintifyWebhookReceived,),
}
# The stages that work on jobs (the monitor watches them): the ones a job's failure comes from.
PIPELINE_STAGES = tuple(s.name for s in _WORKERS)


def stages_for(channels: Sequence[str]) -> list[str]:
    """The stages a deployment selling on ``channels`` runs: every stage but the publishers of
    the other channels."""
    skipped = {PUBLISHERS[c].name for c in CHANNELS if c not in channels}
    return [name for name in STAGES if name not in skipped]


def _default_channels() -> list[str]:
    return [DEFAULT_CHANNEL]


class ChannelSettings(PodSettings):
    """The sales channels this deployment publishes to (``PUBLISH_CHANNELS``, or the seed's
    ``enabledPlatforms``): each runs its own publisher consumer group; a job may pick a subset."""

    publish_channels: Annotated[list[str], NoDecode] = Field(
        default_factory=_default_channels,
        validation_alias=AliasChoices("publish_channels", "enabled_platforms"),
        description="Comma-separated channel names (shared.contract.topics.CHANNELS)",
    )

    @field_validator("publish_channels", mode="before")
    @classmethod
    def _split_channels(cls, value: object) -> object:
        if isinstance(value, str):
            value = value.split(",")
        if isinstance(value, list):
            return list(dict.fromkeys(str(v).strip().lower() for v in value if str(v).strip()))
        return value

    @field_validator("publish_channels")
    @classmethod
    def _known_channels(cls, value: list[str]) -> list[str]:
        unknown = [c for c in value if c not in CHANNELS]
        if unknown:
            raise ValueError(
                f"unknown channel(s) {', '.join(unknown)}: the channels are {', '.join(CHANNELS)}"
            )
        if not value:
            raise ValueError("name at least one channel")
        return value

    def stages(self) -> list[str]:
        """The stages this deployment runs (the publishers of its channels only)."""
        return stages_for(self.publish_channels)


def channel_of(stage: str) -> str | None:
    """The sales channel of a publisher stage (None for the others)."""
    found = STAGES.get(stage)
    return found.channel if found else None


# Every stage's name as a type for the API (request fields, query parameters), built from the
# registry so that a new stage needs no other list.
StageName = StrEnum("StageName", {name.upper(): name for name in STAGES})  # type: ignore[misc]


# ------------------------------------------------------------ what each topic carries
# The consumers' allow-lists (shared.pipeline.runner), the replay targets (services/monitor/dlq.py,
# the API), the AsyncAPI document and the broker's ACLs are all read from these tables.

Kind = Literal["event", "retry", "dead_letter"]


def type_name(cls: type[Event]) -> str:
    """An event class's ``type`` (``job.requested``)."""
    return str(cls.model_fields["type"].default)


@dataclass(frozen=True)
class TopicCopy:
    """A delay or dead-letter topic: the stage whose failures it holds."""

    stage: Stage
    kind: Kind
    level: int = 0


def topic_copies() -> dict[str, TopicCopy]:
    """Every delay and dead-letter topic -> the stage whose failed inputs it holds."""
    copies: dict[str, TopicCopy] = {}
    for stage in STAGES.values():
        for level, topic in enumerate(stage.retry_topics, start=1):
            copies[topic] = TopicCopy(stage, "retry", level)
        copies[stage.dlq] = TopicCopy(stage, "dead_letter")
    return copies


def carried_events(topics: list[str], copies: dict[str, TopicCopy]) -> dict[str, dict[str, Kind]]:
    """Topic -> the event types on it, each as produced (``event``) or as a stage's copy with
    failure headers (``retry``, ``dead_letter``): a stage's delay and dead-letter topics carry
    whatever its inputs carry (the monitor's, what the others' copies carry)."""
    carried: dict[str, dict[str, Kind]] = {}
    for topic in topics:
        if topic in copies:
            carried[topic] = {}
        elif topic in TOPIC_EVENTS:
            carried[topic] = {type_name(c): "event" for c in TOPIC_EVENTS[topic]}
        else:
            raise ValueError(f"no event types known for topic {topic}: add it to TOPIC_EVENTS")
    for stage in STAGES.values():
        if stage.reports_on_dlq:
            carried[stage.dlq][type_name(StageFailed)] = "event"
    changed = True
    while changed:
        changed = False
        for stage in STAGES.values():
            read = [e for t in stage.inputs for e in carried[t]]
            for topic in (*stage.retry_topics, stage.dlq):
                kind = copies[topic].kind
                for event in read:
                    have = carried[topic].get(event)
                    if have is None:
                        carried[topic][event] = kind
                        changed = True
                    elif have != kind:
                        raise ValueError(f"{topic} would carry {event} both as {have} and {kind}")
    order = [type_name(c) for c in EVENT_TYPES]
    return {
        t: dict(sorted(e.items(), key=lambda kv: order.index(kv[0]))) for t, e in carried.items()
    }


def topic_events() -> dict[str, dict[str, Kind]]:
    """Every topic of :func:`all_topics` -> the event types it carries, each as produced
    (``event``) or as a stage's copy (``retry``, ``dead_letter``): what a consumer of the topic
    may accept, and nothing else."""
    return carried_events([s.name for s in all_topics()], topic_copies())


@functools.cache
def _accepted() -> dict[str, tuple[type[Event], ...]]:
    by_name = {type_name(c): c for c in EVENT_TYPES}
    return {t: tuple(by_name[e] for e in events) for t, events in topic_events().items()}


def accepted_on(
    topic: str, kinds: tuple[Kind, ...] = ("event", "retry", "dead_letter")
) -> tuple[type[Event], ...] | None:
    """The event classes that belong on ``topic`` (only those carried as one of ``kinds``);
    None for a topic the registry does not know. Whatever else arrives there is forged or
    misrouted: a consumer dead-letters it, never handles or folds it."""
    if topic not in _accepted():
        return None
    if len(kinds) == 3:
        return _accepted()[topic]
    events = topic_events()[topic]
    return tuple(c for c in _accepted()[topic] if events[type_name(c)] in kinds)


def replay_targets() -> list[str]:
    """The topics the API replays dead letters onto (services/monitor/dlq.py ``replay_topic``):
    the pipeline stages' inputs, and the first delay topic of a stage whose letters go back to
    it alone (the monitor, and a channel's publisher, which shares products.created)."""
    targets = [t for n in PIPELINE_STAGES for t in STAGES[n].inputs]
    targets.append(MONITOR.retry_topic(1))
    targets += [s.retry_topic(1) for s in PUBLISHERS.values() if s.channel != DEFAULT_CHANNEL]
    return list(dict.fromkeys(targets))


def replay_targets_of(dlq_topic: str) -> tuple[str, ...]:
    """Where a dead letter of ``dlq_topic`` may be replayed: its stage's inputs, or its stage's
    first delay topic for the monitor and a channel's publisher (which share their inputs with
    other stages). Nothing for a topic that is no stage's DLQ. A replay goes nowhere else,
    whatever a record's headers say."""
    stage = next((s for s in STAGES.values() if s.dlq == dlq_topic), None)
    if stage is None:
        return ()
    if stage is MONITOR or stage.channel not in (None, DEFAULT_CHANNEL):
        return (stage.retry_topic(1),)
    return stage.inputs


@dataclass(frozen=True)
class TopicSpec:
    """One topic's layout."""

    name: str
    retention_ms: int
    cleanup_policy: str = "delete"
    partitions: int | None = None  # None = the configured default

    def config(self) -> dict[str, str]:
        return {"retention.ms": str(self.retention_ms), "cleanup.policy": self.cleanup_policy}


def all_topics() -> list[TopicSpec]:
    """Every topic the engine uses, with its retention and cleanup policy."""
    specs = [TopicSpec(t, 7 * DAY_MS) for t in JOBS_BY_PRIORITY]
    specs += [TopicSpec(t, 7 * DAY_MS) for t in (IMAGES_GENERATED, PRODUCTS_CREATED, PUBLISHED)]
    for stage in STAGES.values():
        specs += [TopicSpec(t, 7 * DAY_MS) for t in stage.retry_topics]
        # Dead letters wait for a person: keep them a month.
        specs.append(TopicSpec(stage.dlq, 30 * DAY_MS))
    specs.append(TopicSpec(HEARTBEATS, DAY_MS))
    specs.append(TopicSpec(CONTROL, DAY_MS))
    specs.append(TopicSpec(PRINTIFY_WEBHOOKS, 7 * DAY_MS))
    # A decision is replayable as long as a dead letter is.
    specs.append(TopicSpec(SELLER_DECISIONS, 30 * DAY_MS))
    return specs


def _partition_count(admin: AdminClient, name: str, timeout: float, at_least: int = 1) -> int:
    """Partitions of an existing topic, once the broker's metadata shows ``at_least`` of them.

    Metadata lags a create or grow by a moment; a service started right after
    ``ensure_topics`` must see the layout it was promised, so callers wait here.
    """
    deadline = time.monotonic() + timeout
    while True:
        topic = admin.list_topics(topic=name, timeout=timeout).topics.get(name)
        if topic is not None and topic.error is None and len(topic.partitions) >= at_least:
            return len(topic.partitions)
        if time.monotonic() > deadline:
            raise KafkaException(f"topic {name} never showed {at_least} partitions in its metadata")
        time.sleep(0.1)


@dataclass
class _Plan:
    """What ``ensure_topics`` does: each topic's outcome, the topics to create and to grow."""

    outcome: dict[str, str] = field(default_factory=dict)
    to_create: list[NewTopic] = field(default_factory=list)
    to_grow: list[NewPartitions] = field(default_factory=list)


def _plan(
    specs: list[TopicSpec],
    topics: Mapping[str, Any],
    default_partitions: int,
    replication_factor: int,
    min_insync_replicas: int | None,
) -> _Plan:
    plan = _Plan()
    for spec in specs:
        want = spec.partitions or default_partitions
        existing = topics.get(spec.name)
        if existing is None or existing.error is not None:
            config = spec.config()
            if min_insync_replicas is not None:
                config["min.insync.replicas"] = str(min_insync_replicas)
            plan.to_create.append(NewTopic(spec.name, want, replication_factor, config=config))
            plan.outcome[spec.name] = "created"
        elif len(existing.partitions) < want:
            # Growing re-maps keys to partitions for new messages only; per-job ordering holds
            # for everything produced after the change, which is what the stages rely on.
            plan.to_grow.append(NewPartitions(spec.name, want))
            plan.outcome[spec.name] = f"grown {len(existing.partitions)}->{want}"
        else:
            plan.outcome[spec.name] = "ok"
    return plan


def _create(admin: AdminClient, plan: _Plan, timeout: float) -> None:
    wanted = {t.topic: t.num_partitions for t in plan.to_create}
    for name, fut in admin.create_topics(plan.to_create, operation_timeout=timeout).items():
        try:
            fut.result()
        except KafkaException as exc:
            if exc.args[0].name() != "TOPIC_ALREADY_EXISTS":
                raise
            # Created by another process, or so recently that our metadata did not show
            # it yet: it may still have too few partitions.
            have = _partition_count(admin, name, timeout)
            if have < wanted[name]:
                plan.to_grow.append(NewPartitions(name, wanted[name]))
                plan.outcome[name] = f"grown {have}->{wanted[name]}"
            else:
                plan.outcome[name] = "ok"


def _grow(admin: AdminClient, plan: _Plan, timeout: float) -> None:
    for name, fut in admin.create_partitions(plan.to_grow, operation_timeout=timeout).items():
        fut.result()
        logger.warning("topic partitions grown topic=%s change=%s", name, plan.outcome[name])
    for grown in plan.to_grow:
        _partition_count(admin, grown.topic, timeout, at_least=grown.new_total_count)


def ensure_topics(
    admin: AdminClient,
    *,
    default_partitions: int,
    replication_factor: int = 1,
    min_insync_replicas: int | None = None,
    specs: list[TopicSpec] | None = None,
    timeout: float = 30.0,
) -> dict[str, str]:
    """Create missing topics and grow ones with too few partitions; leave the rest alone.

    ``min_insync_replicas`` unset: 2 with three replicas or more, else the broker's default.
    Returns what happened per topic: ``created``, ``grown <old>-><new>`` or ``ok``.
    """
    if min_insync_replicas is None and replication_factor >= 3:
        # acks=all then means on two replicas at least: one node may die, nothing lost.
        min_insync_replicas = 2
    specs = specs if specs is not None else all_topics()
    metadata = admin.list_topics(timeout=timeout)
    plan = _plan(
        specs, metadata.topics, default_partitions, replication_factor, min_insync_replicas
    )
    if plan.to_create:
        _create(admin, plan, timeout)
    if plan.to_grow:
        _grow(admin, plan, timeout)
    created = [n for n, o in plan.outcome.items() if o == "created"]
    if created:
        logger.info("topics created count=%d", len(created))
    return plan.outcome


class BrokerAuthError(ConfigError):
    """The broker refused the client's credentials (SASL) or its TLS handshake."""


def wait_for_broker(config: Mapping[str, Any], timeout: float = 60.0) -> None:
    """Block until an AdminClient built from ``config`` (``KafkaSettings.client_config()``:
    security protocol, SASL, TLS) sees a broker.

    Raises :class:`BrokerAuthError` as soon as the broker refuses the credentials (waiting would
    not change them), TimeoutError when no broker answered in time; neither message holds a
    secret.
    """
    refused: list[KafkaError] = []
    last: list[KafkaError] = []

    def on_error(err: KafkaError) -> None:
        if err.code() in _AUTH_ERRORS:
            refused.append(err)
        last[:] = [err]

    admin_config: dict[str, Any] = {**config, "log_level": 0, "error_cb": on_error}
    admin = AdminClient(admin_config)
    bootstrap = config.get("bootstrap.servers")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            md = admin.list_topics(timeout=2)
            if md.brokers:
                return
        except KafkaException as exc:  # raised until the broker answers
            last[:] = [exc.args[0]] if exc.args and isinstance(exc.args[0], KafkaError) else []
        admin.poll(0)  # serves error_cb: a refused login is reported there, not by list_topics
        if refused:
            raise BrokerAuthError(
                f"Kafka at {bootstrap} refused the client: {refused[0].str()} "
                f"(security protocol {config.get('security.protocol', 'PLAINTEXT')}, "
                f"SASL mechanism {config.get('sasl.mechanism', 'none')}, user "
                f"{config.get('sasl.username', 'none')}): check KAFKA_SECURITY_PROTOCOL, "
                "KAFKA_SASL_MECHANISM, KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD"
            )
        time.sleep(0.2)
    reason = last[0].str() if last else "no answer"
    raise TimeoutError(
        f"Kafka at {bootstrap} not ready after {timeout}s: {reason} (a listener that expects "
        "another security protocol only disconnects: check KAFKA_SECURITY_PROTOCOL)"
    )


# What a broker answers to wrong credentials or a failed TLS handshake.
_AUTH_ERRORS = {KafkaError._AUTHENTICATION, KafkaError._SSL, KafkaError.SASL_AUTHENTICATION_FAILED}
