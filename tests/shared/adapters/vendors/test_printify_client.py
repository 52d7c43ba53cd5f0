"""PrintifyClient against the real Printify simulator over HTTP (no mocks)."""

from __future__ import annotations

import asyncio
import hashlib
import io
import logging
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from PIL import Image

from shared.adapters.vendors.printify import (
    CatalogVariant,
    External,
    PrintifyClient,
    Product,
    Shop,
    build_product_payload,
    choose_shop,
)
from shared.platform.errors import (
    ConfigError,
    PermanentError,
    PodError,
    RateLimited,
    RetryableError,
    VendorTimeout,
)
from simulators.process import SimulatorProcess
from tests.support.infra import free_port

SHOP = 12345678


def png_bytes(width: int = 48, height: int = 48) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (width, height), (10, 120, 200)).save(buf, "PNG")
    return buf.getvalue()


def new_key() -> str:
    return f"sk-secret-{uuid.uuid4().hex}"


def books_for(proc: SimulatorProcess, api_key: str) -> dict[str, Any]:
    books = httpx.get(f"{proc.url}/_sim/books", trust_env=False).json()
    return dict(books["accounts"][hashlib.sha256(api_key.encode()).hexdigest()[:12]])


def set_faults(proc: SimulatorProcess, **config: Any) -> None:
    resp = httpx.post(f"{proc.url}/_sim/config", json=config, trust_env=False)
    resp.raise_for_status()


@pytest.fixture(scope="module")
def sim() -> Iterator[SimulatorProcess]:
    proc = SimulatorProcess("printify", free_port()).start()
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def limited_sim() -> Iterator[SimulatorProcess]:
    """10 requests per 2 s and 2 publishes per 2 s: Printify's limits, shrunk for tests."""
    env = {
        "SIM_PRINTIFY_RPM": "10",
        "SIM_PRINTIFY_RATE_WINDOW_S": "2",
        "SIM_PRINTIFY_PUBLISH_LIMIT": "2",
        "SIM_PRINTIFY_PUBLISH_WINDOW_S": "2",
    }
    proc = SimulatorProcess("printify", free_port(), env=env).start()
    yield proc
    proc.stop()


@pytest.fixture
def faults_off(sim: SimulatorProcess) -> Iterator[SimulatorProcess]:
    """Restore the simulator's fault knobs whatever the test injected."""
    yield sim
    set_faults(sim, failure_rate=0.0, timeout_share=0.0, fault_statuses=[500, 502, 503, 429])


@pytest.fixture
async def client(sim: SimulatorProcess) -> AsyncIterator[PrintifyClient]:
    c = PrintifyClient(api_key=new_key(), base_url=sim.url, timeout_s=5.0)
    yield c
    await c.aclose()


async def make_product(c: PrintifyClient, prefix: str, n_variants: int = 3) -> Product:
    image = await c.upload_image(file_name="d.png", contents=png_bytes())
    variants = (await c.list_variants(6, 99))[:n_variants]
    body = build_product_payload(
        title=f"Tee {prefix}",
        description="desc",
        tags=["retro", f"pod:{prefix}"],
        blueprint_id=6,
        print_provider_id=99,
        variants=variants,
        price_cents=2499,
        image_id=image.id,
        sku_prefix=prefix,
    )
    return await c.create_product(SHOP, body)


# --- happy path --------------------------------------------------------------------------------


async def test_full_flow(sim: SimulatorProcess) -> None:
    key = new_key()
    async with PrintifyClient(api_key=key, base_url=sim.url) as c:
        shops = await c.list_shops()
        assert shops[0].id == SHOP
        image = await c.upload_image(file_name="design.png", contents=png_bytes(64, 32))
        assert (image.model_dump()["width"], image.model_dump()["height"]) == (64, 32)
        assert 6 in {b.id for b in await c.list_blueprints()}
        assert {p.id for p in await c.list_print_providers(6)} == {99, 29}
        variants = await c.list_variants(6, 99)
        listed = variants[0].model_dump()
        assert variants and {"id", "title", "options", "placeholders"} <= set(listed)

        prefix = f"job-{uuid.uuid4().hex[:8]}"
        body = build_product_payload(
            title="Retro Sunset Tee",
            description="A sunset.",
            tags=["retro", f"pod:{prefix}"],
            blueprint_id=6,
            print_provider_id=99,
            variants=variants[:4],
            price_cents=2499,
            image_id=image.id,
            positions=("front", "back"),
            sku_prefix=prefix,
        )
        created = await c.create_product(SHOP, body)
        # The variants sent, enabled; the rest of the provider's matrix comes back disabled.
        assert [v.sku for v in created.variants if v.is_enabled] == [
            f"{prefix}-{v.id}" for v in variants[:4]
        ]
        assert await c.get_product(SHOP, created.id) == created
        found = await c.find_product_by_marker(SHOP, prefix)
        assert found is not None and found.id == created.id
        assert await c.find_product_by_marker(SHOP, "no-such-marker") is None

        await c.publish(SHOP, created.id)
        assert (await c.get_product(SHOP, created.id)).is_locked is True
        await c.publishing_succeeded(SHOP, created.id, external_id="ext-1", handle="h/1")
        product = await c.get_product(SHOP, created.id)
        assert product.external == External(id="ext-1", handle="h/1")
        assert product.is_locked is False

    books = books_for(sim, key)
    assert books["products_created"] == 1 and books["uploads"] == 1
    assert books["publish_calls"] == {created.id: 1}
    assert books["publishing_succeeded"] == {created.id: 1}


async def test_list_variants_is_cached(sim: SimulatorProcess) -> None:
    key = new_key()
    async with PrintifyClient(api_key=key, base_url=sim.url) as c:
        first = await c.list_variants(77, 29)
        second = await c.list_variants(77, 29)
    assert second is first and first
    assert books_for(sim, key)["requests"] == 1


async def test_find_product_by_marker_walks_every_page(client: PrintifyClient) -> None:
    prefixes = [f"walk-{i}-{uuid.uuid4().hex[:6]}" for i in range(103)]
    image = await client.upload_image(file_name="d.png", contents=png_bytes())
    variants = (await client.list_variants(6, 99))[:3]
    for i, prefix in enumerate(prefixes):
        body = build_product_payload(
            title=prefix,
            description="d",
            tags=[],
            blueprint_id=6,
            print_provider_id=99,
            # Another attempt may choose other variants: any of them identifies the product.
            variants=variants[i % 3 :],
            price_cents=1500,
            image_id=image.id,
            sku_prefix=prefix,
        )
        await client.create_product(SHOP, body)
    envelope = await client.list_products(SHOP, page=1, limit=50)
    assert envelope.last_page == 3
    # The oldest product is on the last page: found however deep it is.
    found = await client.find_product_by_marker(SHOP, prefixes[0])
    assert found is not None and found.title == prefixes[0]
    # A marker is not a prefix of another's: walk-1 must not match walk-10.
    assert await client.find_product_by_marker(SHOP, "walk-1") is None
    # Bounded by when the create was first tried: products older than that are not read.
    later = datetime.now(UTC) + timedelta(hours=1)
    assert await client.find_product_by_marker(SHOP, prefixes[0], since=later) is None


def test_build_product_payload_rejects_non_int_price() -> None:
    common: dict[str, Any] = {
        "title": "t",
        "description": "d",
        "tags": [],
        "blueprint_id": 6,
        "print_provider_id": 99,
        "variants": [CatalogVariant(id=17390)],
        "image_id": "a" * 24,
        "sku_prefix": "p",
    }
    bad: Any
    for bad in (19.99, "1999", True, 0):
        with pytest.raises(ValueError, match="price_cents"):
            build_product_payload(price_cents=bad, **common)
    body = build_product_payload(price_cents=1999, positions=("front", "back"), **common)
    assert body["variants"] == [{"id": 17390, "price": 1999, "is_enabled": True, "sku": "p-17390"}]
    placeholders = body["print_areas"][0]["placeholders"]
    assert [p["position"] for p in placeholders] == ["front", "back"]
    assert placeholders[0]["images"] == [
        {"id": "a" * 24, "x": 0.5, "y": 0.5, "scale": 1, "angle": 0}
    ]


# --- rate limits -------------------------------------------------------------------------------


async def test_client_limiter_keeps_burst_under_sim_limit(limited_sim: SimulatorProcess) -> None:
    key = new_key()
    async with PrintifyClient(
        api_key=key, base_url=limited_sim.url, requests_per_minute=10, rate_window_s=2.0
    ) as c:
        started = time.monotonic()
        results = await asyncio.gather(*(c.list_shops() for _ in range(30)))
        elapsed = time.monotonic() - started
    assert all(r[0].id == SHOP for r in results)
    books = books_for(limited_sim, key)
    # The sim never had to say 429: the client paced itself (30 requests at 10 per 2 s).
    assert books["rate_limited"] == 0
    assert books["requests"] == 30
    assert elapsed >= 3.9


async def test_client_publish_limiter(limited_sim: SimulatorProcess) -> None:
    key = new_key()
    async with PrintifyClient(
        api_key=key,
        base_url=limited_sim.url,
        requests_per_minute=10,
        rate_window_s=2.0,
        publishes_per_window=2,
        publish_window_s=2.0,
    ) as c:
        product = await make_product(c, f"pub-{uuid.uuid4().hex[:6]}")
        started = time.monotonic()
        await asyncio.gather(*(c.publish(SHOP, product.id) for _ in range(4)))
        elapsed = time.monotonic() - started
    books = books_for(limited_sim, key)
    assert books["rate_limited"] == 0
    assert books["publish_calls"] == {product.id: 4}
    assert elapsed >= 1.9


async def test_429_is_waited_out_and_retried(limited_sim: SimulatorProcess) -> None:
    key = new_key()
    # No client-side pacing: the sim's 429 + Retry-After drives the waits.
    async with PrintifyClient(
        api_key=key, base_url=limited_sim.url, requests_per_minute=10_000
    ) as c:
        for _ in range(13):
            assert (await c.list_shops())[0].id == SHOP
    books = books_for(limited_sim, key)
    assert books["rate_limited"] >= 1
    assert books["requests"] == 13 + books["rate_limited"]


async def test_429_after_three_retries_raises_rate_limited(
    faults_off: SimulatorProcess, client: PrintifyClient
) -> None:
    before = httpx.get(f"{faults_off.url}/_sim/faults", trust_env=False).json().get("429", 0)
    set_faults(faults_off, failure_rate=1.0, fault_statuses=[429])
    with pytest.raises(RateLimited) as info:
        await client.list_shops()
    after = httpx.get(f"{faults_off.url}/_sim/faults", trust_env=False).json()["429"]
    assert after - before == 4  # the first try and three retries
    assert info.value.status == 429 and info.value.retry_after == 1.0
    assert info.value.vendor == "printify" and info.value.retryable


# --- error mapping -----------------------------------------------------------------------------


async def test_validation_error_is_permanent_with_printify_code(client: PrintifyClient) -> None:
    image = await client.upload_image(file_name="d.png", contents=png_bytes())
    body = build_product_payload(
        title="t",
        description="d",
        tags=[],
        blueprint_id=6,
        print_provider_id=99,
        variants=[CatalogVariant(id=17390)],
        price_cents=1999,
        image_id=image.id,
        sku_prefix="x",
    )
    body["variants"][0]["price"] = 19.99
    with pytest.raises(PermanentError) as info:
        await client.create_product(SHOP, body)
    err = info.value
    assert (err.status, err.code, err.vendor) == (400, "8150", "printify")
    assert "Validation failed." in err.message and "price" in err.message
    assert not err.retryable

    with pytest.raises(PermanentError) as missing:
        await client.get_product(SHOP, "0" * 24)
    assert missing.value.status == 404


async def test_injected_503_is_retryable(
    faults_off: SimulatorProcess, client: PrintifyClient
) -> None:
    set_faults(faults_off, failure_rate=1.0, fault_statuses=[503])
    with pytest.raises(RetryableError) as info:
        await client.list_shops()
    assert not isinstance(info.value, PermanentError)
    assert (info.value.status, info.value.vendor) == (503, "printify")


async def test_hang_is_vendor_timeout(faults_off: SimulatorProcess) -> None:
    set_faults(faults_off, failure_rate=1.0, timeout_share=1.0, timeout_s=1.5)
    async with PrintifyClient(api_key=new_key(), base_url=faults_off.url, timeout_s=0.3) as c:
        with pytest.raises(VendorTimeout):
            await c.list_shops()


async def test_connection_refused_is_retryable() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    async with PrintifyClient(api_key=new_key(), base_url=url, timeout_s=2.0) as c:
        with pytest.raises(RetryableError) as info:
            await c.list_shops()
    assert not isinstance(info.value, VendorTimeout)


async def test_api_key_never_in_errors_or_logs(
    faults_off: SimulatorProcess, caplog: pytest.LogCaptureFixture
) -> None:
    key = new_key()
    caught: list[PodError] = []
    caplog.set_level(logging.DEBUG)
    async with PrintifyClient(api_key=key, base_url=faults_off.url) as c:
        with pytest.raises(PermanentError) as bad:
            await c.get_product(SHOP, "0" * 24)
        caught.append(bad.value)
        set_faults(faults_off, failure_rate=1.0, fault_statuses=[503])
        with pytest.raises(RetryableError) as unavailable:
            await c.list_shops()
        caught.append(unavailable.value)
    url = f"http://127.0.0.1:{free_port()}"
    async with PrintifyClient(api_key=key, base_url=url) as dead:
        with pytest.raises(RetryableError) as refused:
            await dead.list_shops()
        caught.append(refused.value)
    for err in caught:
        for text in (str(err), err.describe(), repr(err.args), repr(err.__cause__)):
            assert key not in text
    assert key not in caplog.text


class _Shops:
    """Just the shop list, for choosing a shop."""

    def __init__(self, *ids: int) -> None:
        self.shops = [Shop(id=i, title=f"shop {i}", sales_channel="etsy") for i in ids]

    async def list_shops(self) -> list[Shop]:
        return self.shops


@pytest.mark.parametrize("configured", [None, "", "  "])
async def test_an_unset_shop_id_takes_the_only_shop(configured: str | None) -> None:
    # compose.yaml passes an unset PRINTIFY_SHOP_ID as "": that is no choice, not a shop "".
    shop = await choose_shop(_Shops(7), configured)
    assert shop.id == 7
    with pytest.raises(ConfigError, match="2 shops"):
        await choose_shop(_Shops(7, 8), configured)
    assert (await choose_shop(_Shops(7, 8), "8")).id == 8


# --- what Printify's documentation leaves open -------------------------------------------------


def set_behaviour(proc: SimulatorProcess, **values: Any) -> None:
    resp = httpx.post(f"{proc.url}/_sim/behaviour", json=values, trust_env=False)
    resp.raise_for_status()


@pytest.fixture
def behaviour(sim: SimulatorProcess) -> Iterator[SimulatorProcess]:
    """The simulator, its undocumented behaviour back to the defaults after the test."""
    yield sim
    set_behaviour(
        sim,
        keeps_sku=True,
        products_order="newest_first",
        variant_update="require_all",
        unsent_variants="disabled",
        publish_locked="accept",
    )


class ChangingShop(httpx.AsyncBaseTransport):
    """The network, with the seller (or another process) making or deleting a product just
    before each listing of products after the first: the shop changes while a scan reads it."""

    def __init__(self, url: str, key: str, mutation: str, body: dict[str, Any]) -> None:
        self._inner = httpx.AsyncHTTPTransport()
        self._side = httpx.AsyncClient(
            base_url=url, headers={"Authorization": f"Bearer {key}"}, trust_env=False
        )
        self._mutation, self._body, self._listings = mutation, body, 0
        self.changed = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == "GET" and request.url.path.endswith(f"/{SHOP}/products.json"):
            self._listings += 1
            if self._listings > 1:
                await self._change()
        return await self._inner.handle_async_request(request)

    async def _change(self) -> None:
        path = f"/v1/shops/{SHOP}/products.json"
        if self._mutation == "create":
            (await self._side.post(path, json=self._body)).raise_for_status()
        else:  # delete the newest product
            listed = (await self._side.get(f"{path}?limit=50")).json()["data"]
            newest = max(listed, key=lambda p: (p["created_at"], p["id"]))
            (
                await self._side.delete(f"/v1/shops/{SHOP}/products/{newest['id']}.json")
            ).raise_for_status()
        self.changed += 1

    async def aclose(self) -> None:
        await self._side.aclose()
        await self._inner.aclose()


@pytest.mark.parametrize("mutation", ["create", "delete"])
@pytest.mark.parametrize("keeps_sku", [True, False])
@pytest.mark.parametrize("order", ["newest_first", "oldest_first"])
async def test_find_product_by_marker_under_every_listing_order_and_sku_behaviour(
    behaviour: SimulatorProcess, order: str, keeps_sku: bool, mutation: str
) -> None:
    """The product a create with an unknown outcome made is found whether Printify lists
    products newest or oldest first, keeps the SKUs sent or makes its own, and while products
    are made or deleted during the scan; and no other product is taken for it."""
    set_behaviour(behaviour, products_order=order, keeps_sku=keeps_sku)
    key = new_key()
    async with PrintifyClient(api_key=key, base_url=behaviour.url) as c:
        other = await c.upload_image(file_name="other.png", contents=png_bytes())
        variants = (await c.list_variants(6, 99))[:2]

        def body(image_id: str, prefix: str) -> dict[str, Any]:
            return build_product_payload(
                title=prefix,
                description="d",
                tags=[],
                blueprint_id=6,
                print_provider_id=99,
                variants=variants,
                price_cents=1500,
                image_id=image_id,
                sku_prefix=prefix,
            )

        for i in range(60):
            await c.create_product(SHOP, body(other.id, f"old-{i}"))
        await asyncio.sleep(1.1)  # Printify's created_at is to the second
        since = datetime.now(UTC)
        art = await c.upload_image(file_name="art.png", contents=png_bytes())
        target = await c.create_product(SHOP, body(art.id, "pod-target"))
        # The same art on another blueprint (another product type of the same image).
        mug = (await c.list_variants(68, 1))[:1]
        mug_body = build_product_payload(
            title="mug", description="d", tags=[], blueprint_id=68, print_provider_id=1,
            variants=mug, price_cents=1500, image_id=art.id, sku_prefix="pod-mug",
        )  # fmt: skip
        await c.create_product(SHOP, mug_body)
        for i in range(60):
            await c.create_product(SHOP, body(other.id, f"new-{i}"))

    changing = ChangingShop(behaviour.url, key, mutation, body(other.id, "meanwhile"))
    scanner = PrintifyClient(api_key=key, base_url=behaviour.url, transport=changing)
    try:
        found = await scanner.find_product_by_marker(
            SHOP,
            "pod-target",
            image_id=art.id,
            blueprint_id=6,
            print_provider_id=99,
            since=since,
        )
        assert found is not None and found.id == target.id
        assert changing.changed >= 1  # the shop did change under the scan
        # Neither a product of another marker nor the same art on another blueprint.
        assert await scanner.find_product_by_marker(SHOP, "pod-nothing", since=since) is None
    finally:
        await scanner.aclose()
        await changing.aclose()


# --- answers of another shape ------------------------------------------------------------------


def answering(body: object) -> PrintifyClient:
    """A client whose every call Printify answers with ``body`` (200)."""
    return PrintifyClient(
        api_key="tok-test",
        base_url="http://printify",
        transport=httpx.MockTransport(lambda request: httpx.Response(200, json=body)),
    )


async def test_an_answer_without_a_field_the_engine_reads_is_a_permanent_error_naming_it() -> None:
    async with answering({"title": "no id", "variants": []}) as c:
        with pytest.raises(PermanentError, match=r"created product: .*no usable id") as caught:
            await c.create_product(SHOP, {"title": "t"})
    assert caught.value.vendor == "printify"
    async with answering({"id": "p1", "variants": [{"id": 1, "price": "19.99"}]}) as c:
        with pytest.raises(PermanentError, match=r"no usable variants\.0\.price"):
            await c.get_product(SHOP, "p1")


async def test_fields_printify_adds_are_kept_and_the_ones_read_are_typed() -> None:
    body = {"id": "p1", "is_locked": True, "new_field": {"a": 1}, "variants": [{"id": 7}]}
    async with answering(body) as c:
        product = await c.get_product(SHOP, "p1")
    assert product.is_locked is True and product.variants[0].price is None
    assert product.model_extra == {"new_field": {"a": 1}}
