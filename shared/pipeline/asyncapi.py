"""The AsyncAPI 3.0 document of the event pipeline, built from the topic registry and the event
models: ``python -m shared.pipeline.asyncapi`` writes ``docs/asyncapi.yaml`` (``make schemas``), and
the API serves it at ``/asyncapi.json``. A test fails when the checked-in file is stale.

- A channel per topic of :func:`shared.contract.topics.all_topics` (address = the topic), with its
  Kafka binding: retention and cleanup policy from the topic's
  :class:`~shared.contract.topics.TopicSpec`.
- A message per event type in ``components.messages``. Its payload is the event model's JSON
  Schema, with the nested models in ``components.schemas`` (the standalone files of
  ``docs/events/`` keep theirs under ``$defs``, which a schema inside this document could not
  reference). Its Kafka key is the envelope's ``job_id``, whatever that names for the type.
- What goes on each pipeline topic is the registry's table
  (:data:`shared.contract.topics.TOPIC_EVENTS`). The delay and dead-letter topics carry what their
  stage reads, as :data:`shared.contract.topics.STAGES` says, copied with the ``pod.*`` headers of
  :mod:`shared.pipeline.runner.headers`. :func:`topic_events` and :func:`operations` give the same
  tables to the consumers' allow-lists and the broker's ACLs.
- Operations per service: every stage receives its inputs and its delay topics, and sends its
  outputs, its delay and dead-letter topics and its heartbeats; the API and the pool manager
  send and receive what they do.
"""

from __future__ import annotations

import inspect
import logging
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic.json_schema import models_json_schema

from shared.contract.events import (
    EVENT_TYPES,
    SCHEMA_VERSION,
    ControlCommand,
    Event,
    JobRequested,
    PoolScaled,
    PrintifyWebhookReceived,
    SellerDecision,
    StageFailed,
    WorkerExited,
    WorkerHeartbeat,
)
from shared.contract.topics import (
    CONTROL,
    HEARTBEATS,
    JOBS_BY_PRIORITY,
    PRINTIFY_WEBHOOKS,
    SELLER_DECISIONS,
    STAGES,
    TopicSpec,
    all_topics,
)

# Re-exported: the consumers' allow-lists and the broker's ACLs read them from here or there.
from shared.contract.topics import Kind as Kind
from shared.contract.topics import TopicCopy as _Copy
from shared.contract.topics import carried_events as _carried
from shared.contract.topics import replay_targets as replay_targets
from shared.contract.topics import topic_copies as _copies
from shared.contract.topics import topic_events as topic_events
from shared.contract.topics import type_name as type_name
from shared.pipeline.runner import headers as hdr
from shared.pipeline.runner.model import RunnerSettings
from shared.platform.settings import REPO_ROOT, KafkaSettings

logger = logging.getLogger(__name__)

ASYNCAPI_PATH = REPO_ROOT / "docs" / "asyncapi.yaml"
ASYNCAPI_VERSION = "3.0.0"
KAFKA_BINDING_VERSION = "0.5.0"

Json = dict[str, Any]

# What the Kafka key (always the envelope's job_id) names, per event type; the job id otherwise.
_KEYS: dict[str, str] = {
    "job": "The job id (the envelope's `job_id`): one job's events stay in order within a topic.",
    "instance": (
        "The id of the service instance that reports (the envelope's `job_id`): one instance's "
        "reports stay in order."
    ),
    "command": "The command's id (the envelope's `job_id`), as the API answered it.",
    "resource": (
        "`printify:<resource type>:<resource id>` (the envelope's `job_id`): every call about "
        "one product or order lands on one partition, in order."
    ),
}
_KEY_OF: dict[type[Event], str] = {
    WorkerHeartbeat: "instance",
    WorkerExited: "instance",
    PoolScaled: "instance",
    ControlCommand: "command",
    PrintifyWebhookReceived: "resource",
}

# The pod.* headers (names in shared/pipeline/runner/headers.py; written by
# shared/pipeline/runner/failures.py and services/api/routes/dlq.py).
# Kafka header values are bytes; these are UTF-8 text.
FAILURE_HEADERS: dict[str, Json] = {
    hdr.ERROR_CLASS: {
        "description": "The error's class (`RetryableError`, `InvalidEventError`...)."
    },
    hdr.ERROR_MESSAGE: {"description": "What went wrong (at most 4000 characters)."},
    hdr.ERROR_RETRYABLE: {
        "enum": ["true", "false"],
        "description": "Whether another attempt could succeed.",
    },
    hdr.ORIGINAL_TOPIC: {
        "description": "The stage input the message was first consumed from (kept on every hop)."
    },
    hdr.ORIGINAL_PARTITION: {"pattern": "^[0-9]+$", "description": "Its partition there."},
    hdr.ORIGINAL_OFFSET: {"pattern": "^[0-9]+$", "description": "Its offset there."},
    hdr.FIRST_FAILURE_AT: {
        "format": "date-time",
        "description": "When it first failed (ISO 8601, UTC; kept on every hop).",
    },
    hdr.STAGE: {"description": "The stage that failed it."},
    hdr.FAILED_AT: {"format": "date-time", "description": "When it failed this time."},
}
RETRY_HEADERS: dict[str, Json] = {
    hdr.ATTEMPT: {
        "pattern": "^[0-9]+$",
        "description": "The attempt this delivery is (1 = the first retry).",
    },
    hdr.RETRY_DUE: {
        "pattern": "^[0-9]+$",
        "description": "When it is due, in epoch milliseconds: the stage holds it until then.",
    },
}
DEAD_LETTER_HEADERS: dict[str, Json] = {
    hdr.ATTEMPT: {
        "pattern": "^[0-9]+$",
        "description": "Retries made before it was given up (0: it failed on its first delivery).",
    },
    hdr.VALUE_DROPPED: {
        "pattern": "^[0-9]+$",
        "description": (
            "Only when the broker refused the copy: the size in bytes of the value, which was "
            "dropped (the record's value is then empty)."
        ),
    },
}
REPLAY_HEADERS: dict[str, Json] = {
    hdr.REPLAY: {"enum": ["true"], "description": "A dead letter the API replayed."},
    hdr.REPLAY_OF: {
        "pattern": "^.+:[0-9]+:[0-9]+$",
        "description": "`<dlq topic>:<partition>:<offset>` of the dead letter it copies.",
    },
}


def pointer(*parts: str) -> str:
    """A reference to a place in this document (JSON Pointer, RFC 6901)."""
    return "#/" + "/".join(p.replace("~", "~0").replace("/", "~1") for p in parts)


def ref(*parts: str) -> Json:
    return {"$ref": pointer(*parts)}


@dataclass(frozen=True)
class Operation:
    service: str
    action: Literal["send", "receive"]
    topic: str
    summary: str
    # The event types it sends or receives there; None = every message of the channel.
    events: tuple[str, ...] | None = None
    group: Json | None = None

    @property
    def id(self) -> str:
        return f"{self.service}.{self.action}.{self.topic}"


def operations() -> list[Operation]:
    """What each service (every stage, the API, the pool manager) sends and receives, topic by
    topic: the document's operations, and what a broker's ACLs must allow each one."""
    return _operations(topic_events())


def _operations(carried: dict[str, dict[str, Kind]]) -> list[Operation]:
    prefix = RunnerSettings.model_fields["group_id_prefix"].default
    ops: list[Operation] = []
    heartbeat = (type_name(WorkerHeartbeat),)
    for stage in STAGES.values():
        group = {"type": "string", "enum": [f"{prefix}.{stage.name}"]}
        for topic in stage.inputs:
            ops.append(Operation(stage.name, "receive", topic, f"Reads {topic}.", group=group))
        for topic in stage.retry_topics:
            summary = f"Reads its delay topic {topic} (each message once it is due)."
            ops.append(Operation(stage.name, "receive", topic, summary, group=group))
        for topic in stage.outputs:
            ops.append(Operation(stage.name, "send", topic, f"Produces its results to {topic}."))
        for level, topic in enumerate(stage.retry_topics, start=1):
            summary = f"Schedules retry {level} of a failed input."
            if level == len(stage.retry_topics):
                summary = f"Schedules retry {level}, and every later one, of a failed input."
            ops.append(Operation(stage.name, "send", topic, summary))
        dlq = "Dead-letters an input it gives up on."
        if stage.reports_on_dlq:
            dlq += " Reports a failed part of a job as a stage.failed of its own."
        ops.append(Operation(stage.name, "send", stage.dlq, dlq))
        beat = "Reports its liveness and progress."
        ops.append(Operation(stage.name, "send", HEARTBEATS, beat, events=heartbeat))

    api = [
        *(
            Operation("api", "send", t, "Submits a job (POST /jobs).", (type_name(JobRequested),))
            for t in JOBS_BY_PRIORITY
        ),
        Operation(
            "api",
            "send",
            CONTROL,
            "Sends an operator's command to the pool manager (POST /scale, /workers/{id}/restart).",
            (type_name(ControlCommand),),
        ),
        Operation(
            "api",
            "send",
            PRINTIFY_WEBHOOKS,
            "Puts a Printify webhook call whose signature checks out on the topic "
            "(POST /webhooks/printify).",
            (type_name(PrintifyWebhookReceived),),
        ),
        Operation(
            "api",
            "send",
            SELLER_DECISIONS,
            "Sends a seller's decision about a job (POST /jobs/{id}/cancel, "
            "/jobs/{id}/images/{index}/approve|reject|regenerate, /listings/...).",
            (type_name(SellerDecision),),
        ),
    ]
    replay = "Replays dead letters, with the `pod.replay` headers (POST /dlq/replay)."
    for topic in replay_targets():
        found = next((o for o in api if o.topic == topic), None)
        if found is None:
            api.append(Operation("api", "send", topic, replay))
        else:
            api[api.index(found)] = Operation(
                "api", "send", topic, f"{found.summary} {replay}", found.events
            )
    ops += api

    ops += [
        Operation(
            "pool",
            "receive",
            CONTROL,
            "Reads the operators' commands (a fresh group from the end: only commands sent while "
            "it runs).",
            group={"type": "string", "pattern": r"^pod\.pool\.[0-9a-f]{8}$"},
        ),
        Operation(
            "pool",
            "send",
            HEARTBEATS,
            "Reports its own liveness, its instances' deaths and its scaling.",
        ),
    ]
    for op in ops:
        unknown = set(op.events or ()) - set(carried[op.topic])
        if unknown:
            raise ValueError(f"{op.id}: {sorted(unknown)} are not carried by {op.topic}")
    return ops


def _header_schema(
    title: str, description: str, props: dict[str, Json], required: list[str]
) -> Json:
    schema: Json = {
        "type": "object",
        "title": title,
        "description": description,
        "properties": {k: {"type": "string", **v} for k, v in props.items()},
    }
    if required:
        schema["required"] = required
    return schema


def _header_schemas() -> dict[str, Json]:
    stage = {hdr.STAGE: {**FAILURE_HEADERS[hdr.STAGE], "enum": list(STAGES)}}
    failure = {**FAILURE_HEADERS, **stage}
    retry = _header_schema(
        "RetryHeaders",
        "A delay topic's copy of a failed input: why and where it failed, and when it is due. "
        "A dead letter the API replayed onto a delay topic carries the replay headers instead, "
        "and is due at once.",
        {**failure, **RETRY_HEADERS, **REPLAY_HEADERS},
        [],
    )
    retry["anyOf"] = [
        {"required": [*failure, *RETRY_HEADERS]},
        {"required": list(REPLAY_HEADERS)},
    ]
    return {
        "RetryHeaders": retry,
        "DeadLetterHeaders": _header_schema(
            "DeadLetterHeaders",
            "A dead letter: the input a stage gave up on, as it was consumed, with why and where "
            "it failed.",
            {**failure, **DEAD_LETTER_HEADERS},
            [*failure, hdr.ATTEMPT],
        ),
        "ReplayHeaders": _header_schema(
            "ReplayHeaders",
            "Only on a dead letter the API replayed onto its stage input.",
            REPLAY_HEADERS,
            [],
        ),
    }


def _docs(cls: type[Event]) -> list[str]:
    """The paragraphs of an event type's docstrings (its payload model's, then its own when it
    has one), unwrapped, in Markdown: the first is the message's summary."""
    payload = cls.model_fields["payload"].annotation
    paragraphs = []
    for doc in (getattr(payload, "__doc__", None), cls.__dict__.get("__doc__")):
        if doc:
            for paragraph in inspect.cleandoc(doc).split("\n\n"):
                paragraphs.append(" ".join(paragraph.split()).replace("``", "`"))
    return paragraphs


def _message(cls: type[Event], payload: Json, replayable: bool) -> Json:
    name = type_name(cls)
    docs = _docs(cls) or [f"A `{name}` event."]
    message: Json = {"name": name, "title": name, "summary": docs[0]}
    if len(docs) > 1:
        message["description"] = "\n\n".join(docs[1:])
    if replayable:
        message["headers"] = ref("components", "schemas", "ReplayHeaders")
    message["payload"] = payload
    message["correlationId"] = ref("components", "correlationIds", "correlationId")
    message["bindings"] = ref("components", "messageBindings", f"{_KEY_OF.get(cls, 'job')}Key")
    return message


def _copy_message(component: Json, copy: _Copy) -> Json:
    """A delay or dead-letter topic's copy of an event: the same payload and key, with the
    ``pod.*`` failure headers."""
    name = component["name"]
    if copy.kind == "retry":
        title, headers = f"{name} (retry)", "RetryHeaders"
        summary = f"A `{name}` {copy.stage.name} failed on, waiting for another attempt."
    else:
        title, headers = f"{name} (dead letter)", "DeadLetterHeaders"
        summary = f"A `{name}` {copy.stage.name} gave up on, as it was consumed."
    return {
        "name": name,
        "title": title,
        "summary": summary,
        "headers": ref("components", "schemas", headers),
        "payload": component["payload"],
        "correlationId": component["correlationId"],
        "bindings": component["bindings"],
    }


def _channel_description(
    spec: TopicSpec, events: dict[str, Kind], copy: _Copy | None, ops: list[Operation]
) -> str:
    writers = list(dict.fromkeys(o.service for o in ops if o.action == "send"))
    readers = list(dict.fromkeys(o.service for o in ops if o.action == "receive"))
    if copy is None:
        lines = [f"Carries {', '.join(f'`{e}`' for e in events)}."]
    elif copy.kind == "retry":
        lines = [
            f"Delay topic {copy.level} of the `{copy.stage.family}` family ({copy.stage.name}): "
            "an input that failed with a retryable error waits here, with the `pod.*` failure "
            f"headers, until `pod.retry.due`; then {copy.stage.name} handles it again."
        ]
        if any(o.service == "api" for o in ops):
            lines.append(
                f"A dead letter the API replays comes here too, due at once: it goes back to "
                f"{copy.stage.name} alone."
            )
    else:
        lines = [
            f"Dead letters of {copy.stage.name}: each input it gave up on, as it was consumed, "
            "with the `pod.*` failure headers (a value that is not a valid event too; an empty "
            "value, with `pod.value.dropped`, when the broker refused the copy)."
        ]
        if events.get(type_name(StageFailed)) == "event":
            lines.append(
                "Also its own `stage.failed` reports (no `pod.*` headers), whose `input_event` is "
                "the part of the input that failed."
            )
        lines.append("The monitor records each one; the API lists and replays them (`/dlq`).")
    lines.append(f"Written by: {', '.join(writers) or '-'}. Read by: {', '.join(readers) or '-'}.")
    kafka = KafkaSettings.model_fields
    partitions = (
        f"{spec.partitions}"
        if spec.partitions is not None
        else f"the deployment's `KAFKA_PARTITIONS` ({kafka['kafka_partitions'].default} by default)"
    )
    lines.append(
        f"Partitions: {partitions}; replicas: `KAFKA_REPLICATION_FACTOR` "
        f"({kafka['kafka_replication_factor'].default} by default)."
    )
    return "\n\n".join(lines)


def _channel(
    spec: TopicSpec,
    events: dict[str, Kind],
    messages: dict[str, Json],
    copy: _Copy | None,
    ops: list[Operation],
) -> Json:
    config = spec.config()
    binding: Json = {"topic": spec.name}
    if spec.partitions is not None:
        binding["partitions"] = spec.partitions
    binding["topicConfiguration"] = {
        "cleanup.policy": config["cleanup.policy"].split(","),
        "retention.ms": int(config["retention.ms"]),
    }
    binding["bindingVersion"] = KAFKA_BINDING_VERSION
    carried: Json = {}
    for event, kind in events.items():
        if kind == "event":
            carried[event] = ref("components", "messages", event)
        else:
            assert copy is not None  # only a stage's delay and dead-letter topics carry copies
            carried[event] = _copy_message(messages[event], copy)
    return {
        "address": spec.name,
        "description": _channel_description(spec, events, copy, ops),
        "messages": carried,
        "bindings": {"kafka": binding},
    }


def _operation(op: Operation, channel: Json) -> Json:
    events = op.events if op.events is not None else tuple(channel["messages"])
    out: Json = {
        "action": op.action,
        "channel": ref("channels", op.topic),
        "summary": op.summary,
        "messages": [ref("channels", op.topic, "messages", e) for e in events],
        "tags": [{"name": op.service}],
    }
    if op.group is not None:
        out["bindings"] = {"kafka": {"groupId": op.group, "bindingVersion": KAFKA_BINDING_VERSION}}
    return out


def _services(ops: Iterable[Operation]) -> list[Json]:
    """A tag per service, saying which process it is."""
    names = list(dict.fromkeys(o.service for o in ops))
    modules = {s.name: s.module for s in STAGES.values()} | {
        "api": "services.api",
        "pool": "services.pool",
    }
    tags = []
    for name in names:
        stage = STAGES.get(name)
        what = f"`python -m {modules[name]}`"
        if stage is not None and stage.channel is not None:
            what += f" (sales channel {stage.channel})"
        tags.append({"name": name, "description": what})
    return tags


def _info(services: list[Json]) -> Json:
    return {
        "title": "POD Engine events",
        "version": f"{SCHEMA_VERSION}.0.0",
        "description": (
            "The topics of the POD Engine pipeline, the events on them and which service sends "
            "and receives what. Generated from `shared/contract/topics.py` and "
            "`shared/contract/events.py` "
            "(`make schemas`); do not edit.\n\n"
            "Every message value is a JSON event: one envelope (`event_id`, `type`, "
            "`schema_version`, `job_id`, `occurred_at`, `producer`, `correlation_id`, `attempt`) "
            "and a payload per `type`. The key is the envelope's `job_id`, so one job's events "
            "stay in order within a topic. The version's major number is the envelope's "
            f"`schema_version` ({SCHEMA_VERSION}); consumers refuse a newer one. Standalone JSON "
            "Schemas of the events are in `docs/events/`.\n\n"
            "Each stage retries a failed input through its delay topics "
            "(`<family>.retry.<n>`) and gives up on it to its dead-letter topic (`<family>.dlq`), "
            "copying it with `pod.*` headers that say why and where it failed."
        ),
        "tags": services,
    }


def _server() -> Json:
    port = KafkaSettings.model_fields["kafka_port"].default
    return {
        "host": f"localhost:{port}",
        "protocol": "kafka",
        "description": (
            "The deployment's brokers: `KAFKA_BOOTSTRAP_SERVERS`, or else the local broker "
            f"`make up` starts on `KAFKA_PORT` ({port}). SASL when `KAFKA_SECURITY_PROTOCOL` and "
            "`KAFKA_SASL_*` are set."
        ),
    }


def _message_bindings() -> dict[str, Json]:
    job_id = Event.model_json_schema(mode="validation")["properties"]["job_id"]
    limits = {k: job_id[k] for k in ("minLength", "maxLength") if k in job_id}
    return {
        f"{name}Key": {
            "kafka": {
                "key": {"type": "string", **limits, "description": text},
                "bindingVersion": KAFKA_BINDING_VERSION,
            }
        }
        for name, text in _KEYS.items()
    }


def render_asyncapi() -> Json:
    """The AsyncAPI 3.0.0 document (a fresh dict on every call)."""
    specs = all_topics()
    copies = _copies()
    carried = _carried([s.name for s in specs], copies)
    ops = _operations(carried)

    refs, top = models_json_schema(
        [(cls, "validation") for cls in EVENT_TYPES], ref_template="#/components/schemas/{model}"
    )
    schemas: dict[str, Json] = dict(top.get("$defs", {}))
    for name, schema in _header_schemas().items():
        if name in schemas:
            raise ValueError(f"schema name {name} is taken by an event model")
        schemas[name] = schema
    replayable = {e for t in replay_targets() if t not in copies for e in carried[t]}
    messages = {
        type_name(cls): _message(cls, refs[(cls, "validation")], type_name(cls) in replayable)
        for cls in EVENT_TYPES
    }
    channels = {
        s.name: _channel(
            s,
            carried[s.name],
            messages,
            copies.get(s.name),
            [o for o in ops if o.topic == s.name],
        )
        for s in specs
    }
    operations: dict[str, Json] = {}
    for op in ops:
        if op.id in operations:
            raise ValueError(f"two operations named {op.id}")
        operations[op.id] = _operation(op, channels[op.topic])
    return {
        "asyncapi": ASYNCAPI_VERSION,
        "info": _info(_services(ops)),
        "defaultContentType": "application/json",
        "servers": {"kafka": _server()},
        "channels": channels,
        "operations": operations,
        "components": {
            "schemas": schemas,
            "messages": messages,
            "correlationIds": {
                "correlationId": {
                    "description": (
                        "The id of the event that started the chain (a job's `job.requested`); "
                        "null on that first event."
                    ),
                    "location": "$message.payload#/correlation_id",
                }
            },
            "messageBindings": _message_bindings(),
        },
    }


HEADER = (
    "# The AsyncAPI document of POD Engine's topics and events. Generated from "
    "shared/contract/topics.py\n"
    "# and shared/contract/events.py by `python -m shared.pipeline.asyncapi` (`make schemas`): do "
    "not edit.\n"
)


def to_yaml(document: Json) -> str:
    """The document as YAML, in its own key order, with no anchors."""
    import yaml  # the writer's and the tests' (dev tools); the API serves JSON

    class Dumper(yaml.SafeDumper):  # type: ignore[misc]
        def ignore_aliases(self, data: Any) -> bool:
            return True

    def text(dumper: Any, value: str) -> Any:
        # Descriptions of several paragraphs as literal blocks, read as they are written.
        style = "|" if "\n" in value else None
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)

    Dumper.add_representer(str, text)
    dumped = yaml.dump(
        document, Dumper=Dumper, sort_keys=False, allow_unicode=True, width=1_000_000
    )
    return HEADER + str(dumped)


def export(path: Path = ASYNCAPI_PATH) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(to_yaml(render_asyncapi()))
    return path


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout)
    logger.info("wrote %s", export().relative_to(REPO_ROOT))
