"""The Meta simulator refuses what Meta refuses: tokens, appsecret_proof, malformed batches,
items without the fields the catalog requires (per item, in the batch's status, not as a
refusal of the call), and calls over the business's budget; raw HTTP, no engine client."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from simulators import meta as meta_sim
from simulators.contracts.meta import contract

CATALOG = meta_sim.DEFAULT_CATALOG
TOKEN = meta_sim.DEFAULT_TOKEN
PROOF = hmac.new(meta_sim.DEFAULT_APP_SECRET.encode(), TOKEN.encode(), hashlib.sha256).hexdigest()
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def item(rid: str, **over: object) -> dict[str, object]:
    data: dict[str, object] = {
        "id": rid,
        "item_group_id": "grp",
        "title": "Moon Cat tee",
        "description": "A cat on the moon",
        "availability": "in stock",
        "condition": "new",
        "price": "24.99 USD",
        "link": "https://shop.example.com/products/moon-cat",
        "image_link": "https://images.example.com/moon-cat.png",
        "brand": "POD Engine",
        "size": "M",
    }
    return {k: v for k, v in {**data, **over}.items() if v is not None}


@pytest.fixture
async def http(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[httpx.AsyncClient]:
    monkeypatch.setenv("SIM_META_BATCH_DELAY_S", "0.2")
    app = meta_sim.create_app()
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://graph"
    ) as client:
        yield client


async def batch(
    http: httpx.AsyncClient, requests: list[dict[str, object]], **extra: str
) -> httpx.Response:
    return await http.post(
        f"/v25.0/{CATALOG}/items_batch",
        headers=AUTH,
        data={
            "appsecret_proof": PROOF,
            "item_type": "PRODUCT_ITEM",
            "requests": json.dumps(requests),
            **extra,
        },
    )


async def finished(http: httpx.AsyncClient, handle: str) -> dict[str, Any]:
    deadline = time.monotonic() + 5
    while True:
        resp = await http.get(
            f"/v25.0/{CATALOG}/check_batch_request_status",
            headers=AUTH,
            params={"appsecret_proof": PROOF, "handle": handle},
        )
        assert resp.status_code == 200, resp.text
        status: dict[str, Any] = resp.json()["data"][0]
        if status["status"] == "finished":
            return status
        assert time.monotonic() < deadline, status
        await asyncio.sleep(0.05)


def error_of(resp: httpx.Response) -> dict[str, Any]:
    body = resp.json()
    assert set(body) == {"error"}, body
    error: dict[str, Any] = body["error"]
    assert {"message", "type", "code", "fbtrace_id"} <= set(error)
    return error


async def test_a_call_without_appsecret_proof_or_with_a_wrong_one_is_refused(
    http: httpx.AsyncClient,
) -> None:
    missing = await http.get(f"/v25.0/{CATALOG}", headers=AUTH)
    wrong = await http.get(f"/v25.0/{CATALOG}", headers=AUTH, params={"appsecret_proof": "0" * 64})
    right = await http.get(f"/v25.0/{CATALOG}", headers=AUTH, params={"appsecret_proof": PROOF})
    assert missing.status_code == 400 and error_of(missing)["code"] == 100
    assert error_of(wrong)["message"] == "Invalid appsecret_proof provided in the API argument"
    assert right.status_code == 200
    assert right.json()["business"]["id"] == meta_sim.DEFAULT_BUSINESS


async def test_unknown_and_expired_tokens_get_code_190(http: httpx.AsyncClient) -> None:
    unknown = await http.get(
        f"/v25.0/{CATALOG}", headers={"Authorization": "Bearer nope"}, params={"access_token": ""}
    )
    assert error_of(unknown)["code"] == 190
    await http.post("/_sim/behaviour", json={"expire_tokens": True})
    expired = await http.get(f"/v25.0/{CATALOG}", headers=AUTH, params={"appsecret_proof": PROOF})
    error = error_of(expired)
    assert (error["code"], error["error_subcode"]) == (190, 463)


async def test_an_unknown_catalog_is_graphs_unsupported_request(http: httpx.AsyncClient) -> None:
    resp = await http.get("/v25.0/999", headers=AUTH, params={"appsecret_proof": PROOF})
    error = error_of(resp)
    assert (error["code"], error["error_subcode"]) == (100, 33)


async def test_a_batch_without_its_required_params_is_refused(http: httpx.AsyncClient) -> None:
    resp = await http.post(
        f"/v25.0/{CATALOG}/items_batch",
        headers=AUTH,
        data={"appsecret_proof": PROOF, "requests": "[]"},
    )
    assert error_of(resp)["code"] == 100
    assert "item_type" in error_of(resp)["message"]
    # The params the contract requires are the ones refused when missing.
    assert contract().required_params("ProductCatalog", "POST", "items_batch") == [
        "item_type",
        "requests",
    ]


async def test_an_item_missing_a_required_field_is_an_error_of_that_item_later(
    http: httpx.AsyncClient,
) -> None:
    resp = await batch(
        http,
        [
            {"method": "CREATE", "data": item("ok-1")},
            {"method": "CREATE", "data": item("bad-1", availability=None)},
            {"method": "CREATE", "data": item("bad-2", condition="mint")},
            {"method": "CREATE", "data": item("bad-3", price="24.99")},
        ],
    )
    assert resp.status_code == 200, resp.text  # accepted: the items are checked when it runs
    handle = resp.json()["handles"][0]
    pending = await http.get(
        f"/v25.0/{CATALOG}/check_batch_request_status",
        headers=AUTH,
        params={"appsecret_proof": PROOF, "handle": handle},
    )
    assert pending.json()["data"][0]["status"] != "finished"
    status = await finished(http, handle)
    messages = {e["id"]: e["message"] for e in status["errors"]}
    assert set(messages) == {"bad-1", "bad-2", "bad-3"}
    assert "required field Availability" in messages["bad-1"]
    assert "condition" in messages["bad-2"]
    products = await http.get(
        f"/v25.0/{CATALOG}/products",
        headers=AUTH,
        params={
            "appsecret_proof": PROOF,
            "filter": json.dumps({"retailer_id": {"is_any": ["ok-1", "bad-1"]}}),
        },
    )
    assert [p["retailer_id"] for p in products.json()["data"]] == ["ok-1"]


async def test_the_usage_header_counts_and_the_business_is_throttled_over_budget(
    http: httpx.AsyncClient,
) -> None:
    await http.post("/_sim/limits", json={"call_budget": 2, "window_s": 600})
    first = await batch(http, [{"method": "CREATE", "data": item("a")}])
    usage = json.loads(first.headers["x-business-use-case-usage"])
    (entry,) = usage[meta_sim.DEFAULT_BUSINESS]
    assert (entry["type"], entry["call_count"]) == ("catalog_batch", 50)
    await batch(http, [{"method": "CREATE", "data": item("b")}])
    third = await batch(http, [{"method": "CREATE", "data": item("c")}])
    assert error_of(third)["code"] == 80014
    (entry,) = json.loads(third.headers["x-business-use-case-usage"])[meta_sim.DEFAULT_BUSINESS]
    assert entry["estimated_time_to_regain_access"] == 10  # minutes, rounded up


async def test_a_token_stops_working_its_lifetime_after_first_use(
    http: httpx.AsyncClient,
) -> None:
    params = {"appsecret_proof": PROOF}
    assert (await http.get(f"/v25.0/{CATALOG}", headers=AUTH, params=params)).status_code == 200
    await http.post("/_sim/behaviour", json={"token_ttl_s": 0.05})
    deadline = time.monotonic() + 5
    while (resp := await http.get(f"/v25.0/{CATALOG}", headers=AUTH, params=params)).is_success:
        assert time.monotonic() < deadline, "the token never expired"
        await asyncio.sleep(0.02)
    error = error_of(resp)
    assert (error["code"], error["error_subcode"]) == (190, 463)


async def test_an_item_is_hidden_by_its_visibility_and_kept(http: httpx.AsyncClient) -> None:
    """A seller's unpublish: UPDATE visibility "staging" (ProductItem.visibility: published,
    staging) keeps the item, hidden; a value outside the enum is that item's error."""
    await finished(
        http, (await batch(http, [{"method": "CREATE", "data": item("v-1")}])).json()["handles"][0]
    )
    hide: list[dict[str, object]] = [
        {"method": "UPDATE", "data": {"id": "v-1", "visibility": "staging"}},
        {"method": "UPDATE", "data": {"id": "v-1", "visibility": "hidden"}},
    ]
    status = await finished(http, (await batch(http, hide)).json()["handles"][0])
    assert [e["line"] for e in status["errors"]] == [1]
    assert "visibility" in status["errors"][0]["message"]
    products = await http.get(
        f"/v25.0/{CATALOG}/products",
        headers=AUTH,
        params={
            "appsecret_proof": PROOF,
            "filter": json.dumps({"retailer_product_group_id": {"eq": "grp"}}),
            "fields": "retailer_id,visibility,price",
        },
    )
    [found] = products.json()["data"]
    assert (found["retailer_id"], found["visibility"], found["price"]) == (
        "v-1",
        "staging",
        "24.99 USD",
    )
    [booked] = (await http.get("/_sim/books")).json()["catalogs"][CATALOG]["items"]
    assert booked["visibility"] == "staging"
