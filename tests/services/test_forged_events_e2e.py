"""Forged and misrouted events against the running stack (issue 25): each consumer takes from a
topic only the event types the registry says it carries; anything else is dead-lettered with its
reason and never folded into the job it names. And a dead letter is replayed only onto its
stage's own input, whatever its producer wrote in ``pod.original.topic``."""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
from confluent_kafka import KafkaError, Message, Producer

from devstack.stack import Stack
from shared.contract.events import (
    Event,
    ImageGenerated,
    JobRequested,
    JobRequestedPayload,
    ProductCreated,
    StageFailed,
    WorkerHeartbeat,
)
from shared.contract.topics import (
    CONTROL,
    GENERATOR,
    IMAGES_GENERATED,
    MONITOR,
    PRINTIFY,
    PUBLISHED,
    accepted_on,
    type_name,
)
from tests.support.events import one_of_each
from tests.support.infra import read_all, unique, wait_for
from tests.support.kafka import end_offsets
from tests.support.pipeline import api, produce_job, wait_done

NORMAL = "jobs.requested.normal"
Headers = list[tuple[str, str | bytes | None]]


def produce(
    s: Stack, topic: str, value: bytes, key: str, headers: Headers | None = None
) -> tuple[int, int]:
    """Produce one record as an outside system would; its (partition, offset)."""
    where: list[tuple[int, int]] = []

    def delivered(err: KafkaError | None, msg: Message) -> None:
        assert err is None, err
        where.append((msg.partition() or 0, msg.offset() or 0))

    producer = Producer({"bootstrap.servers": s.bootstrap, "enable.idempotence": True})
    producer.produce(topic, value, key=key.encode(), headers=headers or [], on_delivery=delivered)
    assert producer.flush(10) == 0
    return where[0]


def letters(s: Stack, job_id: str) -> list[dict[str, Any]]:
    resp = httpx.get(f"{api(s)}/dlq", params={"jobId": job_id, "limit": 100}, timeout=10)
    assert resp.status_code == 200, resp.text
    return list(resp.json()["deadLetters"])


def dlq_records(s: Stack, dlq: str) -> dict[tuple[str, int, int], dict[str, str]]:
    """The records of a DLQ topic by the (topic, partition, offset) they were read from."""
    out = {}
    for m in read_all(s.bootstrap, dlq):
        pairs = m.headers() or []
        assert isinstance(pairs, list)  # a consumed message's headers: (name, value) pairs
        h = {k: v.decode(errors="replace") if isinstance(v, bytes) else "" for k, v in pairs}
        if "pod.original.topic" in h:
            topic, partition = h["pod.original.topic"], int(h["pod.original.partition"])
            out[(topic, partition, int(h["pod.original.offset"]))] = h
    return out


def reason(topic: str, cls: type[Event]) -> str:
    names = ", ".join(sorted(type_name(c) for c in accepted_on(topic) or ()))
    return f"unexpected event type '{type_name(cls)}' on {topic} (accepts: {names})"


def test_forged_events_on_the_wrong_topics_are_dead_lettered_and_never_folded(
    stack: Stack,
) -> None:
    s = stack
    victim = JobRequested(
        job_id=unique("victim"),
        producer="tests",
        payload=JobRequestedPayload(
            theme="victim", style="s", niche="n", product_types=["mug"], count=1
        ),
    )
    produce_job(s, victim)
    [done] = wait_done(s, [victim.job_id], timeout=120).values()
    assert done["job"]["detailedStatus"] == "completed", done["job"]

    forged = one_of_each(victim.job_id)
    cases: list[tuple[str, type[Event], tuple[str, ...]]] = [
        # (topic, forged type, the DLQs it must land on: its readers')
        (NORMAL, StageFailed, (GENERATOR.dlq, MONITOR.dlq)),
        (PUBLISHED, ImageGenerated, (MONITOR.dlq,)),
        (PUBLISHED, ProductCreated, (MONITOR.dlq,)),
        (IMAGES_GENERATED, WorkerHeartbeat, (PRINTIFY.dlq, MONITOR.dlq)),
    ]
    planted = []
    for topic, cls, dlqs in cases:
        # Fresh event ids: a forger does not need the real ones.
        event = forged[cls].model_copy(update={"event_id": uuid.uuid4()})
        if isinstance(event, ImageGenerated):
            event = event.model_copy(
                update={"payload": event.payload.model_copy(update={"image_index": 999})}
            )
        partition, offset = produce(s, topic, event.to_json(), victim.job_id)
        planted += [(dlq, (topic, partition, offset), reason(topic, cls)) for dlq in dlqs]

    found: dict[str, dict[tuple[str, int, int], dict[str, str]]] = {}

    def all_dead_lettered() -> bool:
        for dlq in {d for d, _, _ in planted}:
            found[dlq] = dlq_records(s, dlq)
        return all(at in found[dlq] for dlq, at, _ in planted)

    wait_for(all_dead_lettered, 60, "each forged event on its readers' DLQs", interval=0.5)
    for dlq, at, why in planted:
        assert found[dlq][at]["pod.error.message"] == why, (dlq, at)
        assert found[dlq][at]["pod.error.class"] == "InvalidEventError"

    # The monitor has recorded every one of those dead letters (so it has read them all) ...
    wait_for(
        lambda: len(letters(s, victim.job_id)) >= len(planted),
        60,
        "the monitor to record the forged events' dead letters",
        interval=0.5,
    )
    # ... and the job they name is as it was: completed, no error, no retry.
    after = httpx.get(f"{api(s)}/jobs/{victim.job_id}", timeout=10).json()["job"]
    assert after["detailedStatus"] == "completed", after
    assert not after.get("error"), after
    assert (after["imagesDone"], after["imagesFailed"]) == (1, 0)
    # The forged heartbeat (instance id = the victim's job id) is no worker.
    workers = httpx.get(f"{api(s)}/workers", timeout=10).json()["workers"]
    assert victim.job_id not in json.dumps(workers)


def test_a_replay_goes_back_to_the_stages_input_never_where_a_header_says(stack: Stack) -> None:
    s = stack
    job_id = unique("aimed")
    bad = json.loads(
        JobRequested(
            job_id=job_id,
            producer="tests",
            payload=JobRequestedPayload(
                theme="t", style="s", niche="n", product_types=["mug"], count=1
            ),
        ).to_json()
    )
    bad["payload"]["count"] = 0  # invalid: the generator dead-letters it on first sight
    aimed: Headers = [
        ("pod.original.topic", b"pod.control"),
        ("pod.original.partition", b"0"),
        ("pod.original.offset", b"0"),
    ]
    produce(s, NORMAL, json.dumps(bad).encode(), job_id, aimed)

    def generator_letter() -> dict[str, Any] | None:
        return next((d for d in letters(s, job_id) if d["topic"] == GENERATOR.dlq), None)

    letter = wait_for(generator_letter, 60, "the generator's dead letter", interval=0.5)
    assert letter["originalTopic"] == NORMAL
    assert letter["replayTo"] == NORMAL

    control_before = end_offsets(s.bootstrap, CONTROL)
    # The dry run says where it would go and produces nothing.
    url = f"{api(s)}/dlq/replay"
    plan = httpx.post(url, json={"id": letter["id"], "dryRun": True}, timeout=10)
    assert plan.status_code == 202, plan.text
    assert [t["replayTo"] for t in plan.json()["targets"]] == [NORMAL]
    assert plan.json()["replayed"] == 0

    done = httpx.post(url, json={"id": letter["id"]}, timeout=10)
    assert done.status_code == 202, done.text
    assert done.json()["replayed"] == 1
    coordinates = f"{letter['topic']}:{letter['partition']}:{letter['offset']}"

    def copy_on_normal() -> bool:
        return any(
            dict(m.headers() or []).get("pod.replay.of") == coordinates.encode()
            for m in read_all(s.bootstrap, NORMAL)
            if m.key() == job_id.encode()
        )

    wait_for(copy_on_normal, 30, "the replayed copy on jobs.requested.normal", interval=0.5)
    assert end_offsets(s.bootstrap, CONTROL) == control_before
