"""The AsyncAPI document: current on disk, and whole (every topic, event and stage input)."""

from __future__ import annotations

import json
from typing import Any, cast

import pytest
import yaml
from confluent_kafka import Message

from services.monitor.dlq import replay_topic
from shared.contract.events import EVENT_TYPES, ImageGenerated, JobRequested, StageFailed
from shared.contract.topics import (
    HEARTBEATS,
    IMAGES_GENERATED,
    PRINTIFY,
    PUBLISHED,
    PUBLISHERS,
    STAGES,
    all_topics,
)
from shared.pipeline.asyncapi import (
    ASYNCAPI_PATH,
    DEAD_LETTER_HEADERS,
    RETRY_HEADERS,
    render_asyncapi,
    to_yaml,
    type_name,
)
from shared.pipeline.runner.failures import failure_headers, without_value


@pytest.fixture(scope="module")
def doc() -> dict[str, Any]:
    return render_asyncapi()


def resolve(doc: dict[str, Any], ref: str) -> Any:
    """The node a local ``$ref`` points at (JSON Pointer); KeyError when it points nowhere."""
    assert ref.startswith("#/"), ref
    node: Any = doc
    for part in ref[2:].split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def refs(node: Any) -> list[str]:
    """Every ``$ref`` under ``node``."""
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [r for v in node.values() for r in refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in refs(v)]
    return []


def message_names(doc: dict[str, Any], topic: str) -> set[str]:
    """The event types a channel carries (inline copies and component references alike)."""
    out = set()
    for message in doc["channels"][topic]["messages"].values():
        if "$ref" in message:
            message = resolve(doc, message["$ref"])
        out.add(message["name"])
    return out


def test_checked_in_document_is_current() -> None:
    on_disk = ASYNCAPI_PATH.read_text() if ASYNCAPI_PATH.exists() else ""
    assert on_disk == to_yaml(render_asyncapi()), "docs/asyncapi.yaml is stale: run `make schemas`"


def test_the_yaml_reads_back_as_the_document(doc: dict[str, Any]) -> None:
    text = to_yaml(doc)
    assert yaml.safe_load(text) == doc
    assert "&id" not in text  # no anchors: every node written out
    # What the API serves is plain JSON.
    assert json.loads(json.dumps(doc)) == doc


def test_top_level(doc: dict[str, Any]) -> None:
    assert doc["asyncapi"] == "3.0.0"
    assert doc["info"]["title"] == "POD Engine events"
    assert doc["info"]["version"] and doc["info"]["description"]
    assert doc["defaultContentType"] == "application/json"
    assert [s["protocol"] for s in doc["servers"].values()] == ["kafka"]
    assert {"channels", "operations", "components"} <= set(doc)


def test_every_ref_resolves(doc: dict[str, Any]) -> None:
    found = refs(doc)
    assert len(found) > 100
    for ref in found:
        resolve(doc, ref)


def test_a_channel_per_topic_with_its_layout(doc: dict[str, Any]) -> None:
    specs = all_topics()
    assert list(doc["channels"]) == [s.name for s in specs]
    for spec in specs:
        channel = doc["channels"][spec.name]
        assert channel["address"] == spec.name
        assert channel["messages"], spec.name
        kafka = channel["bindings"]["kafka"]
        assert kafka["topic"] == spec.name
        assert kafka["topicConfiguration"] == {
            "cleanup.policy": [spec.cleanup_policy],
            "retention.ms": spec.retention_ms,
        }
        assert ("partitions" in kafka) == (spec.partitions is not None)


def test_a_component_message_per_event_type(doc: dict[str, Any]) -> None:
    messages = doc["components"]["messages"]
    assert list(messages) == [type_name(cls) for cls in EVENT_TYPES]
    for cls in EVENT_TYPES:
        message = messages[type_name(cls)]
        assert message["name"] == type_name(cls)
        payload = resolve(doc, message["payload"]["$ref"])
        assert payload["properties"]["type"]["const"] == type_name(cls)
        assert set(payload["required"]) == set(cls.model_json_schema()["required"])
        key = resolve(doc, message["bindings"]["$ref"])["kafka"]["key"]
        assert key["type"] == "string"


def test_pipeline_topics_carry_their_events(doc: dict[str, Any]) -> None:
    assert message_names(doc, "jobs.requested.high") == {"job.requested"}
    assert message_names(doc, IMAGES_GENERATED) == {"image.generated"}
    assert message_names(doc, PUBLISHED) == {
        "product.publishing", "product.published", "product.withdrawn", "product.repriced"
    }  # fmt: skip
    assert message_names(doc, "seller.decisions") == {"seller.decision"}
    assert message_names(doc, HEARTBEATS) == {"worker.heartbeat", "worker.exited", "pool.scaled"}
    assert message_names(doc, "pod.control") == {"control.command"}
    assert message_names(doc, "printify.webhooks") == {"printify.webhook"}


def test_delay_and_dead_letter_topics_carry_their_stage_inputs(doc: dict[str, Any]) -> None:
    for stage in STAGES.values():
        read = set().union(*(message_names(doc, t) for t in stage.inputs))
        for topic in stage.retry_topics:
            assert message_names(doc, topic) == read, topic
            for message in doc["channels"][topic]["messages"].values():
                assert message["headers"]["$ref"].endswith("/RetryHeaders"), topic
        dlq = doc["channels"][stage.dlq]["messages"]
        assert read <= message_names(doc, stage.dlq), stage.dlq
        for name in read:
            assert dlq[name]["headers"]["$ref"].endswith("/DeadLetterHeaders"), stage.dlq
    # The stages that report a failed part of a job themselves, on their dead-letter topic.
    assert message_names(doc, PRINTIFY.dlq) == {
        "image.generated",
        "seller.decision",
        "stage.failed",
    }
    assert "stage.failed" in message_names(doc, PUBLISHERS["printify"].dlq)
    # A direct channel's: its input, and the refusals its watcher reports after review.
    made = {"product.created", "product.approved", "product.withdrawn", "product.repriced"}
    assert message_names(doc, PUBLISHERS["shopify"].dlq) >= {*made, "stage.failed"}


def test_operations_refer_to_their_channel_and_its_messages(doc: dict[str, Any]) -> None:
    for op_id, op in doc["operations"].items():
        assert op["action"] in ("send", "receive"), op_id
        channel_ref = op["channel"]["$ref"]
        channel = resolve(doc, channel_ref)
        assert op["messages"], op_id
        for message in op["messages"]:
            # A message of the channel referenced, as AsyncAPI 3 requires.
            assert message["$ref"].startswith(f"{channel_ref}/messages/"), op_id
            assert resolve(doc, message["$ref"]) in channel["messages"].values()
        _service, action, topic = op_id.split(".", 2)
        assert (action, channel["address"]) == (op["action"], topic), op_id


def test_every_stage_receives_its_inputs_and_sends_its_failures(doc: dict[str, Any]) -> None:
    ops = doc["operations"]
    for stage in STAGES.values():
        for topic in (*stage.inputs, *stage.retry_topics):
            op = ops[f"{stage.name}.receive.{topic}"]
            group = op["bindings"]["kafka"]["groupId"]
            assert group["enum"] == [f"pod.{stage.name}"]
        for topic in (*stage.retry_topics, stage.dlq, HEARTBEATS):
            assert f"{stage.name}.send.{topic}" in ops
    assert "generator.receive.jobs.requested.high" in ops
    assert "generator.send.images.generated" in ops
    assert "printify.send.products.created" in ops
    for publisher in PUBLISHERS.values():
        assert f"{publisher.name}.send.{PUBLISHED}" in ops
    for op_id in (
        "api.send.jobs.requested.high",
        "api.send.pod.control",
        "api.send.printify.webhooks",
        "pool.receive.pod.control",
        "pool.send.workers.heartbeat",
    ):
        assert op_id in ops


def test_every_channel_is_written_and_read(doc: dict[str, Any]) -> None:
    ops = doc["operations"].values()
    for name in doc["channels"]:
        actions = {o["action"] for o in ops if o["channel"]["$ref"] == f"#/channels/{name}"}
        assert actions == {"send", "receive"}, name


def test_the_api_can_replay_every_dead_letter_where_it_goes(doc: dict[str, Any]) -> None:
    events = {
        None: None,
        "job": json.loads(JobRequested.model_validate(_job()).to_json()),
        "image": {"type": ImageGenerated.model_fields["type"].default},
        "webhook": {"type": "printify.webhook"},
    }
    for stage in STAGES.values():
        for source in (None, *stage.inputs, *stage.retry_topics):
            for event in events.values():
                target = replay_topic(stage.dlq, source, event)
                if target is not None:
                    assert f"api.send.{target}" in doc["operations"], (stage.dlq, source)


def test_failure_headers_are_all_described(doc: dict[str, Any]) -> None:
    class Msg:
        def topic(self) -> str:
            return IMAGES_GENERATED

        def partition(self) -> int:
            return 0

        def offset(self) -> int:
            return 7

    headers = failure_headers(cast(Message, Msg()), ValueError("x"), {}, PRINTIFY)
    dropped = without_value(headers, 10, cast(Any, Exception("too large")))
    names = {k for k, _ in dropped}
    schemas = doc["components"]["schemas"]
    dead = schemas["DeadLetterHeaders"]
    retry = schemas["RetryHeaders"]
    assert names | set(DEAD_LETTER_HEADERS) == set(dead["properties"])
    assert {k for k, _ in headers} | {"pod.attempt"} == set(dead["required"])
    assert {k for k, _ in headers} | set(RETRY_HEADERS) <= set(retry["properties"])
    assert set(dead["properties"]["pod.stage"]["enum"]) == set(STAGES)
    # stage.failed reports carry no failure headers: the component message itself.
    assert doc["channels"][PRINTIFY.dlq]["messages"]["stage.failed"] == {
        "$ref": f"#/components/messages/{type_name(StageFailed)}"
    }


def _job() -> dict[str, Any]:
    return {
        "job_id": "j-1",
        "producer": "test",
        "payload": {
            "theme": "t",
            "style": "s",
            "niche": "n",
            "product_types": ["mug"],
            "count": 1,
            "priority": "high",
        },
    }
