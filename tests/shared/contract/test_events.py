"""The event contract: validation messages, derived ids, and the exported schemas."""

from __future__ import annotations

import json

import pytest

from shared.contract.events import ImageGenerated, JobRequested, parse_event
from shared.contract.schemas import SCHEMA_DIR, render_schemas
from shared.platform.errors import InvalidEventError
from tests.support.kafka import job


def test_checked_in_schemas_are_current() -> None:
    rendered = render_schemas()
    on_disk = {p.name: p.read_text() for p in SCHEMA_DIR.glob("*.json")}
    assert on_disk == rendered, "docs/events is stale: run `make schemas`"


def test_round_trip() -> None:
    event = job("j-1")
    assert parse_event(event.to_json()) == event


def test_field_level_reason() -> None:
    raw = json.loads(job("j-2").to_json())
    raw["payload"]["product_types"] = ["sock"]
    with pytest.raises(InvalidEventError, match=r"payload\.product_types\.0"):
        parse_event(json.dumps(raw))


def test_unknown_type_and_wrong_stage() -> None:
    raw = json.loads(job("j-3").to_json())
    raw["type"] = "job.exploded"
    with pytest.raises(InvalidEventError, match="type"):
        parse_event(json.dumps(raw))
    with pytest.raises(InvalidEventError, match=r"unexpected event type 'job\.requested'"):
        parse_event(job("j-4").to_json(), accept=(ImageGenerated,))


def test_newer_schema_version_is_refused() -> None:
    raw = json.loads(job("j-5").to_json())
    raw["schema_version"] = 99
    with pytest.raises(InvalidEventError, match="schema_version 99"):
        parse_event(json.dumps(raw))


def test_derived_ids_are_stable_and_distinct() -> None:
    parent = job("j-6")
    payload_src = ImageGenerated.model_fields["payload"].annotation
    assert payload_src is not None
    a = parent.derive(JobRequested, parent.payload, producer="x", key="image:0")
    b = parent.derive(JobRequested, parent.payload, producer="x", key="image:0")
    c = parent.derive(JobRequested, parent.payload, producer="x", key="image:1")
    assert a.event_id == b.event_id != c.event_id
    assert a.correlation_id == str(parent.event_id)
