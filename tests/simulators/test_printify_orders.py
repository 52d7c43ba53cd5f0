"""The Printify simulator's orders: made by /_sim/orders, told to the shop's webhooks as
``order:created`` / ``order:updated``, signed as Printify signs every call."""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx

from shared.adapters.vendors.printify_webhooks import WebhookCall, signature_ok
from simulators.process import SimulatorProcess
from tests.simulators.test_printify_sim import (
    SHOP,
    books_of,
    client_for,
    product_body,
    receiver,
    sim,
    upload,
)
from tests.support.infra import wait_for

__all__ = ["receiver", "sim"]  # the fixtures this module shares with test_printify_sim

Calls = list[tuple[dict[str, str], bytes]]


def _register(http: httpx.Client, url: str, secret: str) -> None:
    for topic in ("order:created", "order:updated"):
        hook = {"topic": topic, "url": url, "secret": secret}
        assert http.post(f"/v1/shops/{SHOP}/webhooks.json", json=hook).status_code == 200


def _product(http: httpx.Client, price: int) -> dict[str, Any]:
    body = product_body(upload(http)["id"])
    for v in body["variants"]:
        v["price"] = price
    resp = http.post(f"/v1/shops/{SHOP}/products.json", json=body)
    assert resp.status_code == 200, resp.text
    return dict(resp.json())


def _calls(calls: Calls, n: int) -> list[tuple[dict[str, str], dict[str, Any], bytes]]:
    wait_for(lambda: len(calls) >= n, 15, f"{n} webhook calls")
    return [(h, json.loads(b), b) for h, b in calls[:n]]


def test_orders_are_sent_signed_with_the_products_prices_and_costs(
    sim: SimulatorProcess, receiver: Any
) -> None:
    url, calls, _ = receiver
    secret = "whsec-" + uuid.uuid4().hex
    with client_for(sim) as http:
        _register(http, url, secret)
        product = _product(http, 3100)
        variant = product["variants"][0]
        made = http.post(
            "/_sim/orders",
            json={"count": 2, "lines": [{"product_id": product["id"], "quantity": 3}]},
        )
        assert made.status_code == 200, made.text
        orders = made.json()["orders"]
        assert len(orders) == 2 and orders[0]["id"] != orders[1]["id"]

        sent = _calls(calls, 2)
        for headers, call, body in sent:
            # The API's own check accepts it, and only under the webhook's secret.
            assert signature_ok(secret, body, headers["x-pfy-signature"])
            assert not signature_ok("another", body, headers["x-pfy-signature"])
            parsed = WebhookCall.model_validate_json(body)
            assert parsed.type == "order:created" and parsed.resource.type == "order"
            data = call["resource"]["data"]
            assert data["shop_id"] == SHOP and data["id"] == call["resource"]["id"]
            [line] = data["line_items"]
            assert line["product_id"] == product["id"]
            assert line["variant_id"] == variant["id"] and line["quantity"] == 3
            # The buyer paid the product's price; Printify charges the variant's cost.
            assert line["metadata"]["price"] == 3100 and line["cost"] == variant["cost"]
            assert data["total_price"] == 3 * 3100 and data["status"] == "pending"
        assert {c["resource"]["id"] for _, c, _ in sent} == {o["id"] for o in orders}

        # A status change is an order:updated with the whole order.
        order_id = orders[0]["id"]
        moved = http.post(f"/_sim/orders/{order_id}/status", json={"status": "canceled"})
        assert moved.status_code == 200 and moved.json()["status"] == "canceled"
        headers, call, body = _calls(calls, 3)[2]
        assert signature_ok(secret, body, headers["x-pfy-signature"])
        assert call["type"] == "order:updated" and call["resource"]["id"] == order_id
        assert call["resource"]["data"]["status"] == "canceled"
        assert call["resource"]["data"]["line_items"][0]["status"] == "canceled"
        assert books_of(sim, http)["webhooks_delivered"] == {"order:created": 2, "order:updated": 1}


def test_bad_orders_are_refused(sim: SimulatorProcess) -> None:
    with client_for(sim) as http:
        product = _product(http, 2500)
        bad = [
            {"count": 0, "lines": [{"product_id": product["id"]}]},
            {"count": 1, "lines": []},
            {"count": 1, "lines": [{"product_id": product["id"], "quantity": 0}]},
            {"count": 1, "lines": [{"product_id": product["id"], "variant_id": 1}]},
            # Not the account's product, and nothing says what it cost.
            {"count": 1, "lines": [{"product_id": "0" * 24}]},
        ]
        for body in bad:
            assert http.post("/_sim/orders", json=body).status_code == 400, body
        unknown = http.post(f"/_sim/orders/{'f' * 24}/status", json={"status": "canceled"})
        assert unknown.status_code == 404
        made = http.post("/_sim/orders", json={"lines": [{"product_id": product["id"]}]})
        order_id = made.json()["orders"][0]["id"]
        assert (
            http.post(f"/_sim/orders/{order_id}/status", json={"status": "shipped!"}).status_code
            == 400
        )
        # A product made elsewhere sells at the price and cost the order names.
        other = http.post(
            "/_sim/orders",
            json={"lines": [{"product_id": "e" * 24, "variant_id": 7, "price": 900, "cost": 400}]},
        )
        assert other.status_code == 200
        assert other.json()["orders"][0]["line_items"][0]["cost"] == 400
    # No token: no account to sell for.
    anonymous = httpx.post(f"{sim.url}/_sim/orders", json={"lines": []}, trust_env=False)
    assert anonymous.status_code == 400
