"""``/health/ready?stages=true``: ready once every stage's consumer group, as the broker describes
it, holds all the stage's input partitions, and has for FETCH_WAIT_MAX_MS; the plain readiness
probe does not wait for the stages."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from confluent_kafka import Consumer

from shared.contract.topics import STAGES
from shared.pipeline.groups import GroupProbe, GroupView
from tests.services.api.conftest import serve
from tests.support.infra import unique, wait_for

STAGE_NAMES = ("generator", "printify", "publisher", "monitor")


@contextmanager
def members(bootstrap: str, prefix: str, stages: tuple[str, ...]) -> Iterator[dict[str, Consumer]]:
    """One consumer per stage in the stage's group, polled from its own thread as a runner
    polls, subscribed to what the runner subscribes to."""
    stop = threading.Event()
    consumers: dict[str, Consumer] = {}
    threads = []
    for name in stages:
        stage = STAGES[name]
        consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": f"{prefix}.{name}",
                "group.protocol": "consumer",
                "group.remote.assignor": "range",
                "enable.auto.commit": False,
            }
        )
        consumer.subscribe([*stage.retry_topics, *stage.inputs])
        consumers[name] = consumer

        def poll(c: Consumer = consumer) -> None:
            while not stop.is_set():
                c.poll(0.2)
            c.close()

        thread = threading.Thread(target=poll, daemon=True)
        thread.start()
        threads.append(thread)
    try:
        yield consumers
    finally:
        stop.set()
        for thread in threads:
            thread.join(30)


def test_ready_with_stages_waits_for_every_stage_to_hold_its_partitions(
    pipeline_topics: str, migrated_db: str
) -> None:
    prefix = unique("ready")
    with serve(
        kafka_bootstrap_servers=pipeline_topics,
        database_url=migrated_db,
        group_id_prefix=prefix,
        fetch_wait_max_ms=1500,
        health_stages=None,  # every stage this deployment runs
    ) as api:
        assert api.get("/health/ready").status_code == 200  # the probe: broker and database

        def described() -> dict[str, str] | None:
            # A broker that just started is still loading its groups (NOT_COORDINATOR).
            waiting = api.get("/health/ready", params={"stages": "true"})
            assert waiting.status_code == 503
            checks: dict[str, str] = waiting.json()["checks"]
            return None if "not described" in str(checks) else checks

        checks = wait_for(described, 30, "the groups to be described")
        assert checks["kafka"] == "ok" and checks["database"] == "ok"
        for name in STAGE_NAMES:
            assert checks[f"stage.{name}"] == f"no instance in group {prefix}.{name}", checks

        with members(pipeline_topics, prefix, STAGE_NAMES):
            seen: list[dict[str, str]] = []

            def ready() -> bool:
                resp = api.get("/health/ready", params={"stages": "true"})
                seen.append(resp.json()["checks"])
                return resp.status_code == 200

            wait_for(ready, 60, "every stage to hold its partitions", interval=0.1)
            assert all(v == "ok" for v in seen[-1].values()), seen[-1]
            # Held, but not yet for FETCH_WAIT_MAX_MS: said so, not ready.
            settling = [c for c in seen if "taken" in c.get("stage.generator", "")]
            assert settling, seen
            assert "a fetch already out may hold them up to 1.5s" in settling[0]["stage.generator"]

        # The instances left their groups: nobody would pick a job up.
        wait_for(
            lambda: api.get("/health/ready", params={"stages": "true"}).status_code == 503,
            30,
            "the stages to be missed",
        )


def test_a_changed_assignment_settles_again() -> None:
    now = [100.0]
    probe = GroupProbe({}, settle_s=5.0, clock=lambda: now[0])
    try:
        held = GroupView("generator", True, "3 input partitions held", frozenset({("m1", "t", 0)}))
        assert not probe.settled(held).ok
        now[0] += 5.0
        assert probe.settled(held).ok
        # A new member took a partition over: its first fetch may be a long poll away again.
        moved = GroupView("generator", True, "3 held", frozenset({("m2", "t", 0)}))
        now[0] += 1.0
        view = probe.settled(moved)
        assert not view.ok and "taken 0.0s ago" in view.detail
        now[0] += 5.0
        assert probe.settled(moved).ok
        # Not held at all: forgotten, so holding again starts the clock again.
        assert not probe.settled(GroupView("generator", False, "no instance")).ok
        assert not probe.settled(moved).ok
    finally:
        probe.close()
