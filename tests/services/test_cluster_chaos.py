"""A three-node KRaft cluster under failure: the node leading the busiest partitions is SIGKILLed
mid-run and restarted. Topics have three replicas and min.insync.replicas 2, producers acks=all:
every job must still end, none lost, none duplicated on the Printify simulator."""

from __future__ import annotations

import logging
import shutil
import time
import uuid
from collections import Counter
from collections.abc import Iterator

import pytest
from confluent_kafka.admin import AdminClient

from devstack.launch.kafka import LocalKafkaCluster
from devstack.launch.ports import free_port_run
from devstack.stack import Stack, isolated_settings
from shared.contract.topics import IMAGES_GENERATED, JOBS_REQUESTED, PRODUCTS_CREATED, PUBLISHED
from tests.support.infra import TEST_STATE, wait_for
from tests.support.pipeline import (
    TERMINAL,
    api_up,
    job,
    printify_books,
    stack_env,
    status,
    submit,
)

logger = logging.getLogger(__name__)

JOBS = 10
BUSY_TOPICS = [*JOBS_REQUESTED.values(), IMAGES_GENERATED, PRODUCTS_CREATED, PUBLISHED]


@pytest.fixture(scope="module")
def cluster_stack() -> Iterator[Stack]:
    state = TEST_STATE / "cluster"
    shutil.rmtree(state, ignore_errors=True)
    # Node i listens on port + 2i, its controller on port + 1 + 2i: six ports in a row, out
    # of the ephemeral range so that no client connection takes one before its node binds it.
    port = free_port_run(6)
    settings = isolated_settings(
        state,
        kafka_nodes=3,
        kafka_port=port,
        kafka_controller_port=port + 1,
        kafka_partitions=3,
        restart_delay_s=1.0,
    )
    env = {
        **stack_env(state, 128),
        "MAX_IN_FLIGHT": "8",
        "SIM_LATENCY_MS": "20",
        # One GPU at 0.8 s a render: 20 images take ~16 s, so the kill lands mid-run.
        "SIM_COMFYUI_WORKERS": "1",
        "SIM_COMFYUI_RENDER_MS": "800",
        "SIM_FAILURE_RATE": "0",
        "SHUTDOWN_GRACE_S": "5",
    }
    stack = Stack(settings, extra_env=env).start()
    try:
        wait_for(lambda: api_up(stack), 90, "the API", interval=0.2)
        stack.supervise_in_background(0.2)
        yield stack
    finally:
        stack.stop()


def leaders(bootstrap: str) -> dict[tuple[str, int], int]:
    """The leader node of each partition of the pipeline's busiest topics (-1: none)."""
    md = AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=10)
    return {
        (topic, p): part.leader
        for topic in BUSY_TOPICS
        for p, part in md.topics[topic].partitions.items()
    }


def test_the_leader_of_the_busiest_partitions_dies_and_nothing_is_lost(
    cluster_stack: Stack,
) -> None:
    stack = cluster_stack
    cluster = stack.kafka
    assert isinstance(cluster, LocalKafkaCluster)
    md = AdminClient({"bootstrap.servers": stack.bootstrap}).list_topics(timeout=10)
    assert len(md.brokers) == 3
    # Three replicas of every pipeline partition, and acks=all needs two of them.
    assert all(len(part.replicas) == 3 for part in md.topics[IMAGES_GENERATED].partitions.values())

    ids = [
        submit(
            stack,
            theme=f"cluster {i} {uuid.uuid4().hex[:4]}",
            productTypes=["tshirt", "mug"],
            count=2,
            autoPublish=True,
        )
        for i in range(JOBS)
    ]
    wait_for(
        lambda: sum(1 for j in ids if status(stack, j) in TERMINAL) >= 2,
        120,
        "some jobs done before the kill",
        interval=0.2,
    )
    assert sum(1 for j in ids if status(stack, j) in TERMINAL) <= JOBS // 2, "kill too late"

    # The node leading the most pipeline partitions goes down hard, mid-run.
    before = leaders(stack.bootstrap)
    victim, led = Counter(before.values()).most_common(1)[0]
    node = cluster.node(victim)
    node.kill()
    killed_at = time.monotonic()
    logger.warning("cluster chaos: SIGKILL node=%d leading=%d partitions", victim, led)

    # Its partitions get new leaders among the two in-sync replicas left ...
    wait_for(
        lambda: all(n not in (victim, -1) for n in leaders(stack.bootstrap).values()),
        60,
        "new leaders for the dead node's partitions",
        interval=0.5,
    )
    # ... and the pipeline goes on without it before it comes back.
    done_then = sum(1 for j in ids if status(stack, j) in TERMINAL)
    wait_for(
        lambda: sum(1 for j in ids if status(stack, j) in TERMINAL) > done_then,
        120,
        "a job to finish while the node is down",
        interval=0.5,
    )
    node.start()
    logger.warning(
        "cluster chaos: node=%d restarted after %.1f s", victim, time.monotonic() - killed_at
    )

    final: dict[str, dict] = {}

    def all_terminal() -> bool:
        for j in ids:
            if j not in final and status(stack, j) in TERMINAL:
                final[j] = job(stack, j)
        return len(final) == len(ids)

    wait_for(all_terminal, 240, "every job to end", interval=1.0)

    # Nothing lost: the simulators inject no faults here, so every job completes in full.
    outcomes = Counter(r["job"]["detailedStatus"] for r in final.values())
    assert outcomes == {"completed": JOBS}, outcomes
    assert all(len(r["products"]) == 4 for r in final.values())
    # Nothing duplicated on the vendor's side.
    books = printify_books(stack)
    assert books["duplicates"] == []
    products = [p for acct in books["accounts"].values() for p in acct["products"]]
    ours = {p["productId"] for r in final.values() for p in r["products"]}
    assert ours <= {p["product_id"] for p in products}
    publish_calls = [
        n
        for acct in books["accounts"].values()
        for pid, n in acct["publish_calls"].items()
        if pid in ours
    ]
    assert len(publish_calls) == len(ours) and all(n == 1 for n in publish_calls)
    logger.warning(
        "cluster chaos figures: jobs=%d leader_kills=1 lost=0 duplicated=0 products=%d",
        JOBS,
        len(ours),
    )
