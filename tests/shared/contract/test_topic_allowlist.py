"""Each topic's allow-list of event types, derived from the registry: every (topic, type) pair
the registry forbids is refused there with its reason, every pair it allows parses, and each
stage's runner takes from a topic only what the topic carries."""

from __future__ import annotations

from typing import Any

import pytest

from shared.contract.events import (
    EVENT_TYPES,
    Event,
    ImageGenerated,
    JobRequested,
    PrintifyWebhookReceived,
    ProductCreated,
    SellerDecision,
    StageFailed,
    WorkerHeartbeat,
    parse_event,
)
from shared.contract.topics import (
    CHANNELS,
    CONTROL,
    DEFAULT_CHANNEL,
    GENERATOR,
    JOBS_BY_PRIORITY,
    MONITOR,
    PRINTIFY,
    PUBLISHER,
    PUBLISHERS,
    SELLER_DECISIONS,
    STAGES,
    accepted_on,
    all_topics,
    replay_targets,
    replay_targets_of,
    topic_events,
    type_name,
)
from shared.pipeline.runner import RunnerSettings, StageRunner
from shared.platform.errors import InvalidEventError
from tests.support.events import one_of_each

FORGED = one_of_each("victim-job")
FORBIDDEN = [
    (topic, cls)
    for topic, carried in topic_events().items()
    for cls in EVENT_TYPES
    if type_name(cls) not in carried
]
ALLOWED = [
    (topic, cls)
    for topic, carried in topic_events().items()
    for cls in EVENT_TYPES
    if type_name(cls) in carried
]


def _id(pair: Any) -> str:
    return pair if isinstance(pair, str) else type_name(pair)


@pytest.mark.parametrize(("topic", "cls"), FORBIDDEN, ids=_id)
def test_a_type_the_topic_does_not_carry_is_refused_there_with_the_reason(
    topic: str, cls: type[Event]
) -> None:
    accept = accepted_on(topic)
    assert accept is not None
    names = ", ".join(sorted(type_name(c) for c in accept))
    with pytest.raises(InvalidEventError) as refused:
        parse_event(FORGED[cls].to_json(), accept, topic=topic)
    assert (
        f"unexpected event type '{type_name(cls)}' on {topic} (accepts: {names})"
        in refused.value.describe()
    )


@pytest.mark.parametrize(("topic", "cls"), ALLOWED, ids=_id)
def test_a_type_the_topic_carries_parses_there(topic: str, cls: type[Event]) -> None:
    accept = accepted_on(topic)
    assert accept is not None
    assert type(parse_event(FORGED[cls].to_json(), accept, topic=topic)) is cls


def test_every_topic_has_an_allow_list_and_the_forbidden_pairs_are_many() -> None:
    assert {s.name for s in all_topics()} == set(topic_events())
    assert accepted_on("no.such.topic") is None
    # Most types belong on few topics: the refusals are the bulk of the table.
    assert len(FORBIDDEN) > 3 * len(ALLOWED) // 2


def _produced_on(cls: type[Event]) -> set[str]:
    return {t for t, carried in topic_events().items() if carried.get(type_name(cls)) == "event"}


def test_where_each_forgeable_type_belongs() -> None:
    # A stage.failed as an event of its own only on the DLQ of a stage that reports there.
    # The printify stage (a failed product of an image), every channel's publisher (its watcher's
    # refusals after review); never the generator's, the monitor's or a pipeline topic.
    assert _produced_on(StageFailed) == {
        "images.generated.dlq",
        "products.created.dlq",
        *(f"publish.{c}.dlq" for c in CHANNELS if c != DEFAULT_CHANNEL),
    }
    assert {s.dlq for s in STAGES.values() if s.reports_on_dlq} == _produced_on(StageFailed)
    assert _produced_on(WorkerHeartbeat) == {"workers.heartbeat"}
    assert _produced_on(JobRequested) == {
        "jobs.requested.high",
        "jobs.requested.normal",
        "jobs.requested.low",
    }
    assert _produced_on(ImageGenerated) == {"images.generated"}
    assert _produced_on(ProductCreated) == {"products.created"}
    # Copies: the generator's delay topics and DLQ carry what it reads (requests and the
    # seller's decisions), nothing else.
    for topic in (*GENERATOR.retry_topics, GENERATOR.dlq):
        assert accepted_on(topic) == (JobRequested, SellerDecision)
    # ... and the printify stage's what it reads: images, and the seller's decisions.
    assert accepted_on(PRINTIFY.dlq, ("dead_letter",)) == (ImageGenerated, SellerDecision)


def runner(stage_name: str, accept: tuple[type[Event], ...]) -> StageRunner[Any]:
    async def handler(event: Event, ctx: Any) -> list[Any]:
        return []

    stage = STAGES[stage_name]
    return StageRunner(stage=stage, handler=handler, settings=RunnerSettings(), accept=accept)


def test_each_stage_takes_from_a_topic_only_what_the_topic_carries() -> None:
    monitor = runner(MONITOR.name, EVENT_TYPES)
    assert monitor.accepts("jobs.requested.normal") == (JobRequested,)
    assert monitor.accepts("published") == accepted_on("published")
    assert StageFailed not in monitor.accepts("published")
    assert monitor.accepts("workers.heartbeat") == accepted_on("workers.heartbeat")
    assert StageFailed not in monitor.accepts(GENERATOR.dlq)
    assert StageFailed in monitor.accepts(PRINTIFY.dlq)
    publisher = runner(PUBLISHER.name, (ProductCreated, PrintifyWebhookReceived))
    assert publisher.accepts("products.created") == (ProductCreated,)
    assert publisher.accepts("printify.webhooks") == (PrintifyWebhookReceived,)
    assert publisher.accepts(PUBLISHER.retry_topic(1)) == (
        ProductCreated,
        PrintifyWebhookReceived,
    )
    generator = runner(GENERATOR.name, (JobRequested, SellerDecision))
    for topic in JOBS_BY_PRIORITY:
        assert generator.accepts(topic) == (JobRequested,)
    assert generator.accepts(SELLER_DECISIONS) == (SellerDecision,)
    for topic in GENERATOR.retry_topics:
        assert generator.accepts(topic) == (JobRequested, SellerDecision)
    # A topic the registry does not know (a test stage's own) takes what the stage handles.
    assert generator.accepts("echo.in") == (JobRequested, SellerDecision)


def test_replays_go_only_onto_the_stages_own_inputs() -> None:
    assert replay_targets_of(GENERATOR.dlq) == GENERATOR.inputs
    assert replay_targets_of(PRINTIFY.dlq) == ("images.generated", "seller.decisions")
    assert replay_targets_of(PUBLISHER.dlq) == (
        "products.created",
        "printify.webhooks",
        "seller.decisions",
    )
    assert replay_targets_of(MONITOR.dlq) == (MONITOR.retry_topic(1),)
    for channel, stage in PUBLISHERS.items():
        if stage is not PUBLISHER:
            assert replay_targets_of(stage.dlq) == (stage.retry_topic(1),), channel
    assert replay_targets_of("images.generated") == ()
    assert replay_targets_of("other.dlq") == ()
    every = {t for s in STAGES.values() for t in replay_targets_of(s.dlq)}
    assert set(replay_targets()) == every
    assert CONTROL not in every
