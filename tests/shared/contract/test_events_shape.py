"""One shape for a job (issue 26): the spec, its routing and prices as single fields, and the
events of the flat shape from before, which stay on the topics across an upgrade."""

from __future__ import annotations

import json
from typing import Any

import pytest

from services.api.schemas.jobs import JobRequest
from shared.contract.events import (
    ImageGenerated,
    JobRequested,
    JobRequestedPayload,
    JobRouting,
    JobSpec,
    PriceSummary,
    Priority,
    ProductCreated,
    parse_event,
)

pytestmark = pytest.mark.unit

_ENVELOPE = {
    "event_id": "7a3c4a8e-2b0f-4b9e-9a51-2f0e8d7c4b10",
    "job_id": "job-1",
    "occurred_at": "2026-12-01T10:00:00+00:00",
    "producer": "older-version",
}

# image.generated and product.created as the version before routing and prices wrote them.
_OLD_IMAGE: dict[str, Any] = {
    **_ENVELOPE,
    "type": "image.generated",
    "payload": {
        "image_index": 0,
        "image_count": 2,
        "sha256": "a" * 64,
        "uri": "file:///img/0.png",
        "width": 8,
        "height": 8,
        "prompt": "p",
        "seed": 1,
        "title": "T",
        "description": "d",
        "product_types": ["tshirt", "mug"],
        "auto_publish": True,
        "channels": ["printify", "etsy"],
        "priority": "high",
    },
}
_OLD_PRODUCT: dict[str, Any] = {
    **_ENVELOPE,
    "type": "product.created",
    "payload": {
        "image_index": 0,
        "product_type": "mug",
        "product_id": "p-1",
        "shop_id": "1",
        "blueprint_id": 68,
        "print_provider_id": 1,
        "variant_count": 2,
        "price_cents": 1499,
        "price_max_cents": 1999,
        "cost_min_cents": 700,
        "cost_max_cents": 1100,
        "profit_min_cents": 799,
        "margin_min_percent": 44.5,
        "title": "T",
        "auto_publish": True,
        "channels": ["etsy"],
        "priority": "low",
    },
}


def test_an_image_of_the_flat_shape_is_read_with_its_routing() -> None:
    event = parse_event(json.dumps(_OLD_IMAGE))
    assert isinstance(event, ImageGenerated)
    assert event.payload.routing == JobRouting(
        product_types=["tshirt", "mug"], auto_publish=True, channels=["printify", "etsy"],
        priority="high",
    )  # fmt: skip
    # Written again, it has the nested shape, and reads back the same.
    wire = json.loads(event.to_json())
    assert "product_types" not in wire["payload"]
    assert wire["payload"]["routing"]["channels"] == ["printify", "etsy"]
    assert parse_event(event.to_json()) == event


def test_a_product_of_the_flat_shape_is_read_with_its_prices_and_routing() -> None:
    event = parse_event(json.dumps(_OLD_PRODUCT))
    assert isinstance(event, ProductCreated)
    assert event.payload.prices == PriceSummary(
        price_min_cents=1499, price_max_cents=1999, cost_min_cents=700, cost_max_cents=1100,
        profit_min_cents=799, margin_min_percent=44.5,
    )  # fmt: skip
    # It named no product types: the one it knows of is its own.
    assert event.payload.routing == JobRouting(
        product_types=["mug"], auto_publish=True, channels=["etsy"], priority="low"
    )
    assert parse_event(event.to_json()) == event


def test_a_product_priced_flat_before_costs_is_still_read() -> None:
    raw = json.loads(json.dumps(_OLD_PRODUCT))
    for name in ("price_max_cents", "cost_min_cents", "cost_max_cents", "profit_min_cents"):
        del raw["payload"][name]
    del raw["payload"]["margin_min_percent"]
    event = parse_event(json.dumps(raw))
    assert isinstance(event, ProductCreated)
    assert event.payload.prices == PriceSummary(price_min_cents=1499)


def test_a_flat_field_beside_the_nested_one_is_refused() -> None:
    raw = json.loads(json.dumps(_OLD_IMAGE))
    flat = raw["payload"]
    raw["payload"] = {k: v for k, v in flat.items() if k not in JobRouting.model_fields}
    raw["payload"]["routing"] = {"product_types": ["mug"]}
    raw["payload"]["auto_publish"] = True  # a producer mixing the two shapes
    with pytest.raises(Exception, match="auto_publish"):
        parse_event(json.dumps(raw))


def test_job_requested_is_the_spec_flat_and_its_routing_what_later_stages_carry() -> None:
    payload = JobRequestedPayload(
        theme="cats", style="flat", niche="pets", product_types=["mug"], count=2,
        auto_publish=True, channels=["etsy"], priority="high", priority_level=8,
        submitted_by="k",
    )  # fmt: skip
    wire = json.loads(JobRequested(job_id="j", producer="t", payload=payload).to_json())
    # The wire form other systems produce: flat, snake_case, every field of the spec.
    assert set(wire["payload"]) == {*JobSpec.model_fields, "submitted_by"}
    asked = {k: v for k, v in wire["payload"].items() if k != "submitted_by"}
    assert payload.spec == JobSpec.model_validate(asked)
    assert payload.routing == JobRouting(
        product_types=["mug"], auto_publish=True, channels=["etsy"], priority="high"
    )


def test_the_api_request_is_the_spec_under_camelcase_names() -> None:
    # Every field of the spec is asked by its camelCase name, but the level: a number goes in
    # `priority`.
    asked = {f.alias for n, f in JobRequest.model_fields.items() if n != "priority_level"}
    assert asked == {
        f.serialization_alias for n, f in JobSpec.model_fields.items() if n != "priority_level"
    }
    request = JobRequest.model_validate(
        {"theme": " cats ", "style": "flat", "niche": "pets", "productTypes": ["mug"],
         "count": 2, "autoPublish": True, "priority": 8}
    )  # fmt: skip
    spec = request.spec(Priority.HIGH, ["etsy"])
    assert spec.theme == "cats" and spec.priority_level == 8 and spec.channels == ["etsy"]
    # And back: the body that asks for it.
    assert spec.as_request() == {
        "theme": "cats", "style": "flat", "niche": "pets", "productTypes": ["mug"], "count": 2,
        "autoPublish": True, "channels": ["etsy"], "priority": 8,
    }  # fmt: skip
