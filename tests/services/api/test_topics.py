"""/topics against the real broker: offsets and a group's lag as committed, the last messages
decoded with their headers and offsets, links to jobs that exist, and admin only."""

from __future__ import annotations

import socket
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from tests.services.api.conftest import ADMIN_KEY, API_KEY, serve
from tests.services.api.test_api import job_body
from tests.support.infra import wait_for
from tests.support.kafka import create_topics, job


@pytest.fixture(scope="module")
def flow(api: httpx.Client, pipeline_topics: str) -> Iterator[dict[str, Any]]:
    """A topic of two partitions: partition 0 holds three events (one of a job the API knows)
    and a message that is not an event; partition 1 one event. A group committed offset 1 on
    partition 0 and nothing on partition 1."""
    topic = f"test.flow.{uuid.uuid4().hex[:8]}"
    create_topics(pipeline_topics, [topic], 2)
    known = api.post("/jobs", json=job_body()).json()["jobId"]
    events = [job(known), job(f"stray-{uuid.uuid4().hex[:6]}"), job("third")]
    producer = Producer({"bootstrap.servers": pipeline_topics})
    for n, event in enumerate(events):
        producer.produce(
            topic,
            event.to_json(),
            key=event.job_id.encode(),
            partition=0,
            headers=[("traceparent", f"00-{n:032x}-{n + 1:016x}-01"), ("origin", b"test")],
        )
    producer.produce(topic, b"<script>alert(1)</script> not json", key=b"\xff\xfe", partition=0)
    other = job("on-partition-1")
    producer.produce(topic, other.to_json(), key=b"on-partition-1", partition=1)
    assert producer.flush(30) == 0
    group = f"test-flow-group-{uuid.uuid4().hex[:6]}"
    consumer = Consumer({"bootstrap.servers": pipeline_topics, "group.id": group})

    def committed() -> bool:
        # Right after the broker starts its group coordinator may not be ready yet.
        try:
            consumer.commit(offsets=[TopicPartition(topic, 0, 1)], asynchronous=False)
        except KafkaException:
            return False
        return True

    wait_for(committed, 30, "the group's commit")
    consumer.close()
    yield {"topic": topic, "group": group, "known": known, "events": events, "other": other}
    AdminClient({"bootstrap.servers": pipeline_topics}).delete_topics([topic])


def test_topics_show_offsets_and_the_lag_of_a_group(
    api: httpx.Client, flow: dict[str, Any]
) -> None:
    resp = api.get("/topics")
    assert resp.status_code == 200, resp.text
    by_name = {t["name"]: t for t in resp.json()["topics"]}
    mine = by_name[flow["topic"]]
    assert mine["registered"] is False and mine["messages"] == 5
    assert mine["partitions"] == [
        {"partition": 0, "earliest": 0, "latest": 4},
        {"partition": 1, "earliest": 0, "latest": 1},
    ]
    assert mine["groups"] == [
        {
            "group": flow["group"],
            "lag": 3,
            "partitions": [{"partition": 0, "committed": 1, "lag": 3}],
        }
    ]
    # The engine's topics are there, marked as the registry's; the broker's own are not.
    assert by_name["jobs.requested.high"]["registered"] is True
    assert not [n for n in by_name if n.startswith("__")]


def test_the_last_messages_are_decoded_with_headers_offsets_and_job_links(
    api: httpx.Client, flow: dict[str, Any], pipeline_topics: str
) -> None:
    resp = api.get(f"/topics/{flow['topic']}/messages", params={"partition": 0, "limit": 3})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    messages = body["messages"]
    assert [m["offset"] for m in messages] == [3, 2, 1]  # newest first
    assert body["nextBefore"] == 1
    bad, third, stray = messages
    assert bad["type"] is None and bad["payload"] is None
    assert bad["invalid"].startswith("invalid event")
    assert bad["raw"] == "<script>alert(1)</script> not json"  # as text: the page escapes it
    assert bad["key"] == "\ufffd\ufffd" and bad["jobLink"] is None
    assert third["type"] == "job.requested" and third["jobId"] == "third"
    assert third["eventId"] == str(flow["events"][2].event_id)
    assert third["payload"]["theme"] == "space" and third["jobLink"] is None
    assert third["headers"] == [
        {"name": "traceparent", "value": f"00-{2:032x}-{3:016x}-01"},
        {"name": "origin", "value": "test"},
    ]
    assert stray["offset"] == 1 and stray["jobId"] == flow["events"][1].job_id
    older = api.get(
        f"/topics/{flow['topic']}/messages", params={"partition": 0, "limit": 3, "before": 1}
    ).json()
    assert [m["offset"] for m in older["messages"]] == [0]
    assert older["messages"][0]["jobLink"] == flow["known"]  # a job this API has
    assert older["nextBefore"] is None
    # The whole topic: both partitions, newest first by timestamp.
    every = api.get(f"/topics/{flow['topic']}/messages").json()["messages"]
    assert sorted((m["partition"], m["offset"]) for m in every) == [
        (0, 0),
        (0, 1),
        (0, 2),
        (0, 3),
        (1, 0),
    ]
    stamps = [m["timestamp"] for m in every]
    assert stamps == sorted(stamps, reverse=True)
    # Reading joined no group and committed nothing.
    admin = AdminClient({"bootstrap.servers": pipeline_topics})
    groups = admin.list_consumer_groups(request_timeout=10).result(timeout=15).valid
    assert not [g.group_id for g in groups if g.group_id.startswith("pod-api-inspect")]


def test_a_missing_topic_or_partition_is_404_and_bad_parameters_422(
    api: httpx.Client, flow: dict[str, Any]
) -> None:
    assert api.get("/topics/no.such.topic/messages").status_code == 404
    resp = api.get(f"/topics/{flow['topic']}/messages", params={"partition": 7})
    assert resp.status_code == 404 and "no partition 7" in resp.text
    resp = api.get(f"/topics/{flow['topic']}/messages", params={"before": 3})
    assert resp.status_code == 422 and resp.json()["detail"][0]["field"] == "before"
    assert api.get("/topics/a%20b/messages").status_code == 422
    assert api.get(f"/topics/{flow['topic']}/messages", params={"limit": 101}).status_code == 422


def test_only_an_admin_key_sees_the_topics(api_roles: httpx.Client, flow: dict[str, Any]) -> None:
    for path in ("/topics", f"/topics/{flow['topic']}/messages"):
        normal = api_roles.get(path, headers={"Authorization": f"Bearer {API_KEY}"})
        assert normal.status_code == 403, normal.text
        assert api_roles.get(path).status_code == 401
        admin = api_roles.get(path, headers={"Authorization": f"Bearer {ADMIN_KEY}"})
        assert admin.status_code == 200, admin.text


def test_a_broker_that_never_answers_is_a_bounded_503(migrated_db: str) -> None:
    # A listener that accepts connections and never says a word: the broker of a hung host.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        port = silent.getsockname()[1]
        with serve(
            kafka_bootstrap_servers=f"127.0.0.1:{port}",
            database_url=migrated_db,
            topics_timeout_s=1,
            produce_timeout_s=1,
            shutdown_flush_s=0,
        ) as api:
            for path in ("/topics", "/topics/jobs.requested.high/messages"):
                started = time.monotonic()
                resp = api.get(path)
                took = time.monotonic() - started
                assert resp.status_code == 503, resp.text
                assert resp.json()["error"] == "kafka_unavailable"
                assert resp.headers["retry-after"] == "5"
                assert took < 4, (path, took)
            # Meanwhile the API answers others at once: the wait is in a thread, not the loop.
            with ThreadPoolExecutor(1) as pool:
                pending = pool.submit(api.get, "/topics")
                time.sleep(0.3)  # the request is in the broker's wait by now
                started = time.monotonic()
                assert api.get("/health/live").status_code == 200
                assert time.monotonic() - started < 0.5
                assert not pending.done()
                assert pending.result().status_code == 503
