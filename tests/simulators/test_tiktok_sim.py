"""The TikTok Shop simulator refuses what TikTok refuses (Partner Center pages named in
simulators/contracts/tiktok/contract.json), spoken to with raw HTTP and a signer written here
from TikTok's recipe, not the engine's client."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import io
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from PIL import Image

from simulators import tiktok as tiktok_sim
from simulators.contracts.tiktok import document, find, missing
from simulators.tiktok.settings import APP_KEY, APP_SECRET, REFRESH_TOKEN

CIPHER = "ROW_sim-tiktok-cipher-1"
WAREHOUSE = "7068517275539719942"


def signed(
    path: str, query: dict[str, str], body: bytes = b"", *, secret: str = APP_SECRET
) -> dict[str, str]:
    """``query`` with app_key, timestamp and sign, as TikTok's page lays the signature out."""
    q = {"app_key": APP_KEY, "timestamp": str(int(time.time())), **query}
    params = "".join(k + q[k] for k in sorted(q) if k not in ("sign", "access_token"))
    plain = (secret + path + params).encode() + body + secret.encode()
    return {**q, "sign": hmac.new(secret.encode(), plain, hashlib.sha256).hexdigest()}


@pytest.fixture
def app(monkeypatch: pytest.MonkeyPatch) -> FastAPI:
    monkeypatch.setenv("SIM_TIKTOK_AUDIT_S", "0.3")
    monkeypatch.setenv("SIM_TIKTOK_ACCEPT_UNKNOWN_TOKENS", "false")
    return tiktok_sim.create_app()


@pytest.fixture
async def http(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://tiktok"
    ) as client:
        yield client


async def token(http: httpx.AsyncClient, refresh: str = REFRESH_TOKEN) -> dict[str, Any]:
    resp = await http.get(
        "/api/v2/token/refresh",
        params={
            "app_key": APP_KEY,
            "app_secret": APP_SECRET,
            "refresh_token": refresh,
            "grant_type": "refresh_token",
        },
    )
    answer: dict[str, Any] = resp.json()
    return answer


async def call(
    http: httpx.AsyncClient,
    method: str,
    path: str,
    access: str,
    *,
    query: dict[str, str] | None = None,
    body: object | None = None,
    shop: bool = True,
    **sign_kw: Any,
) -> httpx.Response:
    raw = json.dumps(body).encode() if body is not None else b""
    q = {**({"shop_cipher": CIPHER} if shop else {}), **(query or {})}
    return await http.request(
        method,
        path,
        params=signed(path, q, raw, **sign_kw),
        content=raw or None,
        headers={"x-tts-access-token": access, "content-type": "application/json"},
    )


@pytest.fixture
async def access(http: httpx.AsyncClient) -> str:
    answer = await token(http)
    assert answer["code"] == 0
    return str(answer["data"]["access_token"])


def png() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (60, 60)).save(buf, "PNG")
    return buf.getvalue()


async def uploaded(http: httpx.AsyncClient, access: str) -> str:
    path = "/product/202309/images/upload"
    resp = await http.post(
        path,
        params=signed(path, {}),  # a multipart upload is signed without its body
        files={"data": ("a.png", png(), "image/png")},
        data={"use_case": "MAIN_IMAGE"},
        headers={"x-tts-access-token": access},
    )
    assert resp.json()["code"] == 0, resp.text
    return str(resp.json()["data"]["uri"])


def product(uri: str, **over: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "title": "Moon Cat tee",
        "description": "<p>A cat.</p>",
        "category_id": "601226",
        "main_images": [{"uri": uri}],
        "product_attributes": [{"id": "100347", "values": [{"name": "Cotton"}]}],
        "skus": [
            {
                "seller_sku": "pod-abc-01",
                "price": {"amount": "24.99", "currency": "USD"},
                "inventory": [{"warehouse_id": WAREHOUSE, "quantity": 10}],
            }
        ],
        "package_weight": {"value": "0.4", "unit": "KILOGRAM"},
    }
    return {**body, **over}


# --- authentication --------------------------------------------------------------------------


async def test_a_bad_signature_is_refused_with_106001(http: httpx.AsyncClient, access: str) -> None:
    resp = await call(http, "GET", "/logistics/202309/warehouses", access, secret="wrong")
    assert resp.status_code == 401 and resp.json()["code"] == 106001
    # The body is signed: the same query with another body is refused too.
    path = "/product/202309/categories/recommend"
    q = signed(path, {"shop_cipher": CIPHER}, b'{"product_title":"a"}')
    resp = await http.post(
        path,
        params=q,
        content=b'{"product_title":"b"}',
        headers={"x-tts-access-token": access, "content-type": "application/json"},
    )
    assert resp.json()["code"] == 106001


async def test_an_old_timestamp_is_refused(http: httpx.AsyncClient, access: str) -> None:
    path = "/logistics/202309/warehouses"
    q = signed(path, {"shop_cipher": CIPHER, "timestamp": str(int(time.time()) - 600)})
    resp = await http.get(path, params=q, headers={"x-tts-access-token": access})
    assert resp.json()["code"] == 106002


async def test_tokens_expire_and_the_refresh_token_rotates(http: httpx.AsyncClient) -> None:
    first = (await token(http))["data"]
    assert first["access_token_expire_in"] > time.time() + 3600  # a unix time, not seconds
    second = await token(http, first["refresh_token"])
    assert second["code"] == 0
    # The refresh token sent is spent; so is the seed.
    assert (await token(http, first["refresh_token"]))["code"] == 36004004
    assert (await token(http))["code"] == 36004004
    # The first access token ended with its grant's renewal.
    resp = await call(http, "GET", "/logistics/202309/warehouses", first["access_token"])
    assert resp.status_code == 401 and resp.json()["code"] == 105002
    await http.post("/_sim/tokens/expire")
    new = second["data"]["access_token"]
    resp = await call(http, "GET", "/logistics/202309/warehouses", new)
    assert resp.json()["code"] == 105002
    resp = await call(http, "GET", "/logistics/202309/warehouses", "made-up")
    assert resp.json()["code"] == 105001


async def test_shop_operations_need_the_shop_cipher(http: httpx.AsyncClient, access: str) -> None:
    resp = await call(http, "GET", "/logistics/202309/warehouses", access, shop=False)
    assert resp.json()["code"] == 106011
    shops = await call(http, "GET", "/authorization/202309/shops", access, shop=False)
    assert shops.json()["data"]["shops"][0]["cipher"] == CIPHER


async def test_the_qps_limit_answers_429_with_tiktoks_code(
    http: httpx.AsyncClient, access: str
) -> None:
    await http.post("/_sim/limits", json={"qps": 2})
    codes = [
        (await call(http, "GET", "/logistics/202309/warehouses", access)).json()["code"]
        for _ in range(4)
    ]
    assert codes[:2] == [0, 0] and 36009004 in codes[2:]


# --- products --------------------------------------------------------------------------------


async def test_a_product_missing_what_tiktok_requires_is_refused(
    http: httpx.AsyncClient, access: str
) -> None:
    uri = await uploaded(http, access)
    path = "/product/202309/products"
    no_weight = product(uri)
    del no_weight["package_weight"]
    resp = await call(http, "POST", path, access, body=no_weight)
    assert resp.json()["code"] == 36009001 and "package_weight" in resp.json()["message"]
    no_attr = product(uri, product_attributes=[])
    resp = await call(http, "POST", path, access, body=no_attr)
    assert resp.json()["code"] == 12052217 and "Material" in resp.json()["message"]
    not_uploaded = product("tos-never-uploaded")
    assert (await call(http, "POST", path, access, body=not_uploaded)).json()["code"] != 0
    two_alike = product(uri, skus=product(uri)["skus"] * 2)
    assert (await call(http, "POST", path, access, body=two_alike)).json()["code"] != 0
    assert (await http.get("/_sim/books")).json()["created"] == 0


async def test_a_product_is_audited_over_time_and_found_by_seller_sku(
    http: httpx.AsyncClient, access: str
) -> None:
    uri = await uploaded(http, access)
    created = await call(http, "POST", "/product/202309/products", access, body=product(uri))
    assert created.json()["code"] == 0, created.text
    pid = created.json()["data"]["product_id"]
    detail = await call(http, "GET", f"/product/202309/products/{pid}", access)
    assert detail.json()["data"]["status"] == "PENDING"
    search = "/product/202502/products/search"
    found = await call(
        http,
        "POST",
        search,
        access,
        query={"page_size": "10"},
        body={"seller_skus": ["pod-abc-01"]},
    )
    assert [p["id"] for p in found.json()["data"]["products"]] == [pid]
    other = await call(
        http, "POST", search, access, query={"page_size": "10"}, body={"seller_skus": ["nope"]}
    )
    assert other.json()["data"]["products"] == []
    no_size = await call(http, "POST", search, access, body={})
    assert no_size.json()["code"] == 36009001
    deadline = time.monotonic() + 5
    while (
        status := (await call(http, "GET", f"/product/202309/products/{pid}", access)).json()[
            "data"
        ]["status"]
    ) == "PENDING":
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)
    assert status == "ACTIVATE"


async def test_an_audit_fails_with_reasons(http: httpx.AsyncClient, access: str) -> None:
    await http.post("/_sim/audit", json={"audit_s": 0})
    uri = await uploaded(http, access)
    body = product(uri, title="Counterfeit Moon Cat tee")
    pid = (await call(http, "POST", "/product/202309/products", access, body=body)).json()["data"][
        "product_id"
    ]
    detail = (await call(http, "GET", f"/product/202309/products/{pid}", access)).json()["data"]
    assert detail["status"] == "FAILED"
    [reason] = detail["audit_failed_reasons"]
    assert "prohibited word" in reason["reasons"][0]


async def test_books_count_duplicates_by_seller_sku(http: httpx.AsyncClient, access: str) -> None:
    uri = await uploaded(http, access)
    for _ in range(2):
        await call(http, "POST", "/product/202309/products", access, body=product(uri))
    [dup] = (await http.get("/_sim/books")).json()["duplicates"]
    assert dup["marker"] == "pod-abc-01" and len(dup["product_ids"]) == 2


def test_the_contract_names_its_source_and_finds_missing_fields() -> None:
    source = document()["x-pod-source"]
    assert source["date"] and source["docs"] and "202309" in source["versions"]
    found = find("POST", "/product/202309/products")
    assert found is not None
    op, _ = found
    body = {"title": "t", "skus": [{"price": {"amount": "1"}}]}
    lacking = missing(op, body)
    assert "skus[0].price.currency" in lacking and "skus[0].inventory" in lacking
    assert "main_images" in lacking and "title" not in lacking
    assert find("GET", "/product/202309/products/123") is not None
    assert find("DELETE", "/product/202309/products/123") is None


async def test_the_common_fault_knobs_answer_in_tiktoks_format(
    http: httpx.AsyncClient, access: str
) -> None:
    await http.post("/_sim/config", json={"failure_rate": 1, "fault_statuses": [503, 429]})
    seen = set()
    for _ in range(12):
        resp = await call(http, "GET", "/logistics/202309/warehouses", access)
        seen.add((resp.status_code, resp.json()["code"]))
    assert seen <= {(503, 36009003), (429, 36009004)} and seen
    faults = (await http.get("/_sim/faults")).json()
    assert sum(faults.values()) == 12
    await http.post("/_sim/config", json={"failure_rate": 0})
    assert (await call(http, "GET", "/logistics/202309/warehouses", access)).json()["code"] == 0


async def test_a_sellers_decisions_deactivate_activate_price_and_delete(
    http: httpx.AsyncClient, access: str
) -> None:
    await http.post("/_sim/audit", json={"audit_s": 0})
    uri = await uploaded(http, access)
    created = await call(http, "POST", "/product/202309/products", access, body=product(uri))
    pid = created.json()["data"]["product_id"]
    sku_id = created.json()["data"]["skus"][0]["id"]
    ids = {"product_ids": [pid]}

    async def status() -> str:
        answer = (await call(http, "GET", f"/product/202309/products/{pid}", access)).json()
        return str(answer["data"]["status"]) if answer["code"] == 0 else "gone"

    prices = f"/product/202309/products/{pid}/prices/update"
    price = {"skus": [{"id": sku_id, "price": {"amount": "31.00", "currency": "USD"}}]}
    assert (await call(http, "POST", prices, access, body=price)).json()["code"] == 0
    [shop] = (await http.get("/_sim/books")).json()["shops"].values()
    [booked] = shop["products"]
    assert booked["prices"] == {"pod-abc-01": "31.00"}

    deactivate = "/product/202309/products/deactivate"
    answer = (await call(http, "POST", deactivate, access, body=ids)).json()
    assert answer["code"] == 0 and answer["data"]["errors"] == []
    assert await status() == "SELLER_DEACTIVATED"
    # TikTok prices only a live product's SKUs.
    refused = (await call(http, "POST", prices, access, body=price)).json()
    assert refused["code"] == 36009001 and "live" in refused["message"]
    activate = "/product/202309/products/activate"
    assert (await call(http, "POST", activate, access, body=ids)).json()["data"]["errors"] == []
    assert await status() == "ACTIVATE"

    too_many = {"product_ids": [str(n) for n in range(21)]}
    assert (await call(http, "POST", deactivate, access, body=too_many)).json()["code"] == 36009001
    assert (await call(http, "POST", deactivate, access, body={})).json()["code"] == 36009001

    delete = "/product/202309/products"
    assert (await call(http, "DELETE", delete, access, body=ids)).json()["data"]["errors"] == []
    assert await status() == "gone"
    again = (await call(http, "DELETE", delete, access, body=ids)).json()["data"]["errors"]
    assert [(e["code"], e["detail"]["product_id"]) for e in again] == [(12052048, pid)]
    counts = (await http.get("/_sim/books")).json()
    assert (counts["deactivated"], counts["reactivated"], counts["deleted"]) == (1, 1, 1)
