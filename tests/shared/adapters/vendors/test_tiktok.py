"""The TikTok Shop channel against the TikTok simulator's app in process
(``httpx.ASGITransport``), with the Printify simulator's app as the source of products."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from shared.adapters.credentials import StaticToken
from shared.adapters.vendors.channels import ListingState, ProductRef
from shared.adapters.vendors.listing import draft_from_printify
from shared.adapters.vendors.printify import PrintifyClient
from shared.adapters.vendors.tiktok import (
    TikTokChannel,
    TikTokSettings,
    marker_sku,
    sign,
    tiktok_channel,
    tiktok_client,
)
from shared.platform.errors import ConfigError, PermanentError, RetryableError, VendorTimeout
from simulators import printify as printify_sim
from simulators import tiktok as tiktok_sim
from simulators.contracts import tiktok as contract
from simulators.tiktok.settings import APP_KEY, APP_SECRET
from tests.support.channel_books import tiktok as channel_books
from tests.support.printify import TITLE, create_product, in_process, png, reprice

PRINTIFY_SHOP = str(printify_sim.SHOP_ID)
AUDIT_S = 0.5


def settings(**over: Any) -> TikTokSettings:
    values: dict[str, Any] = {
        "tiktok_api_url": "http://tiktok",
        "tiktok_app_key": APP_KEY,
        "tiktok_app_secret": APP_SECRET,
        # A grant of its own for each client (the simulator takes a refresh token it has not
        # seen as one it issued): a refresh token rotates, so two clients never share the seed.
        "tiktok_refresh_token": f"rt-{uuid.uuid4().hex}",
        "tiktok_max_images": 2,
    }
    return TikTokSettings(**{**values, **over})


class Mockups:
    """An injected ``fetch_image``: PNG bytes for any URL; fails from the ``fail_at``-th call."""

    def __init__(self, fail_at: int | None = None) -> None:
        self.urls: list[str] = []
        self.fail_at = fail_at

    async def __call__(self, url: str) -> bytes:
        self.urls.append(url)
        if self.fail_at is not None and len(self.urls) >= self.fail_at:
            raise RetryableError("the process died while fetching a mockup")
        return png(48, 40)


@pytest.fixture
async def source() -> AsyncIterator[PrintifyClient]:
    client = in_process(printify_sim.create_app())
    yield client
    await client.aclose()


@pytest.fixture
def app(monkeypatch: pytest.MonkeyPatch) -> FastAPI:
    monkeypatch.setenv("SIM_TIKTOK_AUDIT_S", str(AUDIT_S))
    monkeypatch.setenv("SIM_TIKTOK_QPS", "100")
    return tiktok_sim.create_app()


def hooks(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://tiktok")


async def books(app: FastAPI) -> dict[str, Any]:
    async with hooks(app) as http:
        return dict((await http.get("/_sim/books")).json())


async def products(app: FastAPI) -> list[dict[str, Any]]:
    shop = (await books(app))["shops"]
    return [p for s in shop.values() for p in s["products"]]


def channel_on(
    app: FastAPI, source: PrintifyClient, mockups: Mockups | None = None, **over: Any
) -> TikTokChannel:
    return tiktok_channel(
        settings(**over),
        source,
        fetch_image=mockups or Mockups(),
        transport=httpx.ASGITransport(app=app),
    )


async def new_product(source: PrintifyClient, variant_count: int = 3) -> ProductRef:
    made = await create_product(
        source,
        PRINTIFY_SHOP,
        variant_count=variant_count,
        price_cents=2499,
        sku_prefix=f"pod-{uuid.uuid4().hex[:16]}",
    )
    return ProductRef(PRINTIFY_SHOP, str(made.id), TITLE)


async def settle(channel: TikTokChannel, ref: ProductRef, timeout: float = 10.0) -> ListingState:
    """check() until the publication is no longer pending (the watcher's loop, with a deadline)."""
    deadline = time.monotonic() + timeout
    while True:
        state = await channel.check(ref)
        if not state.pending:
            return state
        assert time.monotonic() < deadline, "the audit never finished"
        ref = ProductRef(ref.shop_id, ref.product_id, ref.title, state.pending_ref)
        await asyncio.sleep(0.05)


# --- signing -------------------------------------------------------------------------------------


def test_the_signature_is_the_documented_hmac_over_secret_path_sorted_params_body_secret() -> None:
    # The values of TikTok's own walk-through ("Sign your API request"), laid out by hand: the
    # parameters sorted by name, sign and access_token left out, the body, the secret around.
    secret, path = "e59af819cc", "/event/202309/webhooks"
    body = b'{"address":"https://partner.tiktokshop.com","event_type":"PACKAGE_UPDATE"}'
    query = [
        ("timestamp", "1696909648"),
        ("shop_cipher", "ROW_xkMbgAAAeVAQra0eZWebFQq5aIK"),
        ("app_key", "68xu9ks5p4i8"),
        ("sign", "ignored"),
        ("access_token", "ignored-too"),
    ]
    plain = (
        "e59af819cc/event/202309/webhooks"
        "app_key68xu9ks5p4i8shop_cipherROW_xkMbgAAAeVAQra0eZWebFQq5aIKtimestamp1696909648"
        '{"address":"https://partner.tiktokshop.com","event_type":"PACKAGE_UPDATE"}e59af819cc'
    )
    expected = hmac.new(secret.encode(), plain.encode(), hashlib.sha256).hexdigest()
    assert sign(secret, path, query, body) == expected
    assert sign(secret, path, query) != expected  # the body is signed


async def test_a_wrong_app_secret_is_refused_by_tiktok_and_named(app: FastAPI) -> None:
    client = tiktok_client(
        settings(tiktok_app_secret="not-the-secret"),
        token=StaticToken("tok"),
        transport=httpx.ASGITransport(app=app),
    )
    with pytest.raises(PermanentError, match="TIKTOK_APP_SECRET") as caught:
        await client.get_authorized_shops()
    assert caught.value.code == "106001" and caught.value.status == 401
    assert "not-the-secret" not in str(caught.value)
    await client.aclose()


async def test_the_shop_cipher_is_read_from_the_authorized_shops_when_unset(app: FastAPI) -> None:
    client = tiktok_client(settings(), transport=httpx.ASGITransport(app=app))
    assert await client.shop_cipher() == "ROW_sim-tiktok-cipher-1"
    await client.aclose()
    wrong = tiktok_client(
        settings(tiktok_shop_cipher="ROW_another"), transport=httpx.ASGITransport(app=app)
    )
    with pytest.raises(PermanentError, match="shop_cipher") as caught:
        await wrong.get_warehouses()
    assert caught.value.code == "106011"
    await wrong.aclose()


# --- publishing ---------------------------------------------------------------------------------


async def test_publish_is_pending_under_audit_then_listed_with_a_sku_per_variant(
    app: FastAPI, source: PrintifyClient
) -> None:
    mockups = Mockups()
    channel = channel_on(app, source, mockups)
    ref = await new_product(source, 3)

    state = await channel.publish(ref)

    assert state.pending and state.pending_ref is not None
    [booked] = await products(app)
    assert booked["product_id"] == state.pending_ref and booked["status"] == "PENDING"
    assert booked["seller_skus"] == [marker_sku(ref.product_id, n) for n in (1, 2, 3)]
    assert booked["images"] == 2 and len(mockups.urls) == 2
    assert booked["category_id"] == "601226"  # TikTok's recommendation for a tee's title

    listed = await settle(
        channel, ProductRef(ref.shop_id, ref.product_id, ref.title, state.pending_ref)
    )
    assert listed.listing is not None
    assert listed.listing.external_id == state.pending_ref
    assert listed.listing.handle == f"https://shop.tiktok.com/view/product/{state.pending_ref}"
    assert (await products(app))[0]["status"] == "ACTIVATE"
    await channel.aclose()


class FailsOnce(httpx.AsyncBaseTransport):
    """TikTok's 503 (its error body) for the first call to each path in ``paths``, then the
    simulator: a server error within one publication attempt."""

    def __init__(self, inner: httpx.AsyncBaseTransport, paths: set[str]) -> None:
        self.inner = inner
        self.paths = set(paths)
        self.failed: list[str] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path in self.paths:
            self.paths.discard(request.url.path)
            self.failed.append(request.url.path)
            body = {"code": 36009003, "message": "Internal error. Please retry later."}
            return httpx.Response(503, json={**body, "request_id": "r", "data": None})
        return await self.inner.handle_async_request(request)


SAFE_CALLS = {
    "/product/202502/products/search",
    "/product/202309/categories/recommend",
    "/product/202309/images/upload",
}


async def test_a_server_error_on_a_call_that_lists_nothing_is_sent_again_in_the_same_attempt(
    app: FastAPI, source: PrintifyClient
) -> None:
    """Searching, the category recommendation and an image upload change no listing: a 5xx on
    one is sent again at once, so one fault does not cost the whole attempt (the chaos run lost
    a third of TikTok's publications to that)."""
    flaky = FailsOnce(httpx.ASGITransport(app=app), SAFE_CALLS)
    channel = tiktok_channel(settings(), source, fetch_image=Mockups(), transport=flaky)
    state = await channel.publish(await new_product(source, 2))
    assert state.pending
    assert sorted(flaky.failed) == sorted(SAFE_CALLS)
    assert (await books(app))["created"] == 1
    await channel.aclose()


async def test_a_server_error_on_the_create_call_is_not_sent_again(
    app: FastAPI, source: PrintifyClient
) -> None:
    """The create call is never resent (a second send could make a second product): the
    attempt fails, and the next one looks for the marker first."""
    flaky = FailsOnce(httpx.ASGITransport(app=app), {"/product/202309/products"})
    channel = tiktok_channel(settings(), source, fetch_image=Mockups(), transport=flaky)
    ref = await new_product(source, 1)
    with pytest.raises(RetryableError):
        await channel.publish(ref)
    assert (await books(app))["created"] == 0
    assert (await channel.publish(ref)).pending
    assert (await books(app))["created"] == 1
    await channel.aclose()


async def test_the_product_carries_the_price_inventory_and_required_attributes(
    app: FastAPI, source: PrintifyClient
) -> None:
    channel = channel_on(app, source, tiktok_attribute_values={"Material": "Polyester"})
    ref = await new_product(source, 2)
    state = await channel.publish(ref)
    assert state.pending_ref is not None
    detail = await channel.tiktok.get_product(state.pending_ref)
    assert [s.seller_sku for s in detail.skus] == [marker_sku(ref.product_id, n) for n in (1, 2)]
    sim_state = app.state.tiktok
    body = sim_state.products[state.pending_ref].body
    assert body["product_attributes"] == [
        {
            "id": "100347",
            "values": [
                {"id": body["product_attributes"][0]["values"][0]["id"], "name": "Polyester"}
            ],
        }
    ]
    for sku in body["skus"]:
        assert sku["price"] == {"amount": "24.99", "currency": "USD"}
        assert sku["inventory"] == [{"warehouse_id": "7068517275539719942", "quantity": 999}]
        assert {a["name"] for a in sku["sales_attributes"]} <= {"Color", "Size"}
    assert body["package_weight"] == {"value": "0.4", "unit": "KILOGRAM"}
    await channel.aclose()


async def test_an_attribute_value_the_category_does_not_list_is_a_configuration_error(
    app: FastAPI, source: PrintifyClient
) -> None:
    channel = channel_on(app, source, tiktok_attribute_values={"Material": "Unobtainium"})
    with pytest.raises(ConfigError, match="TIKTOK_ATTRIBUTE_VALUES: 'Unobtainium'"):
        await channel.publish(await new_product(source, 1))
    assert (await books(app))["created"] == 0
    await channel.aclose()


async def test_a_failed_audit_is_refused_with_tiktoks_reason(
    app: FastAPI, source: PrintifyClient
) -> None:
    async with hooks(app) as http:
        await http.post("/_sim/audit", json={"failure_word": TITLE.split()[0]})
    channel = channel_on(app, source)
    ref = await new_product(source, 1)
    state = await channel.publish(ref)
    assert state.pending
    refused = await settle(channel, ref)  # found by its marker: no pending_ref given
    assert refused.refused is not None
    assert state.pending_ref is not None and state.pending_ref in refused.refused
    assert "prohibited word" in refused.refused
    # A replay (the seller fixed the cause) submits the same product again, which TikTok
    # audits afresh: nothing new is created, and this time it goes live.
    async with hooks(app) as http:
        await http.post("/_sim/audit", json={"failure_word": ""})
    again = await channel_on(app, source).publish(ref)
    assert again.pending and again.pending_ref == state.pending_ref
    listed = await settle(channel, again_ref(ref, again))
    assert listed.listing is not None and listed.listing.external_id == state.pending_ref
    held = await books(app)
    assert (held["created"], held["edited"]) == (1, 1)
    await channel.aclose()


def again_ref(ref: ProductRef, state: ListingState) -> ProductRef:
    return ProductRef(ref.shop_id, ref.product_id, ref.title, state.pending_ref)


async def test_a_product_deleted_on_tiktok_is_refused_on_check(
    app: FastAPI, source: PrintifyClient
) -> None:
    channel = channel_on(app, source)
    ref = await new_product(source, 1)
    state = await channel.publish(ref)
    async with hooks(app) as http:
        await http.post(f"/_sim/products/{state.pending_ref}", json={"status": "DELETED"})
    checked = await channel.check(
        ProductRef(ref.shop_id, ref.product_id, ref.title, state.pending_ref)
    )
    assert checked.refused is not None and "deleted" in checked.refused
    await channel.aclose()


# --- redelivery and crashes ---------------------------------------------------------------------


async def test_a_redelivery_never_makes_a_second_product(
    app: FastAPI, source: PrintifyClient
) -> None:
    ref = await new_product(source)
    first = await channel_on(app, source).publish(ref)
    # Another process: it knows nothing and finds the product by its marker.
    again = await channel_on(app, source).publish(ref)
    assert first.pending_ref is not None
    assert first.pending_ref in (
        again.pending_ref,
        again.listing.external_id if again.listing else None,
    )
    listed = await settle(channel_on(app, source), ref)
    assert listed.listing is not None
    assert await channel_on(app, source).publish(ref) == listed
    b = await books(app)
    assert b["created"] == 1 and b["duplicates"] == []


class LoseAnswer(httpx.AsyncBaseTransport):
    """The simulator's transport, losing the answer of the first call to ``path`` (the call
    went through: a crash or a timeout after TikTok created the product)."""

    def __init__(self, app: FastAPI, path: str) -> None:
        self.inner = httpx.ASGITransport(app=app)
        self.path = path
        self.lost = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        if request.url.path == self.path and not self.lost:
            self.lost += 1
            raise httpx.ReadTimeout("the answer was lost", request=request)
        return response


async def test_a_create_whose_answer_was_lost_is_reconciled_not_repeated(
    app: FastAPI, source: PrintifyClient
) -> None:
    ref = await new_product(source)
    assert await channel_on(app, source).reconcile(ref) is None  # nothing made yet
    lossy = tiktok_channel(
        settings(),
        source,
        fetch_image=Mockups(),
        transport=LoseAnswer(app, "/product/202309/products"),
    )
    with pytest.raises(VendorTimeout):
        await lossy.publish(ref)
    reconciled = await channel_on(app, source).reconcile(ref)
    assert reconciled is not None and reconciled.pending and reconciled.pending_ref
    # The retry of the attempt finds it too.
    assert (await lossy.publish(ref)).pending_ref == reconciled.pending_ref
    assert (await books(app))["created"] == 1


async def test_a_crash_before_the_create_call_leaves_nothing_and_the_retry_makes_one(
    app: FastAPI, source: PrintifyClient
) -> None:
    ref = await new_product(source)
    with pytest.raises(RetryableError):
        await channel_on(app, source, Mockups(fail_at=2)).publish(ref)
    assert await channel_on(app, source).reconcile(ref) is None
    state = await channel_on(app, source).publish(ref)
    assert state.pending_ref is not None
    b = await books(app)
    assert b["created"] == 1 and b["duplicates"] == []


async def test_concurrent_publications_in_one_process_make_one_product(
    app: FastAPI, source: PrintifyClient
) -> None:
    channel = channel_on(app, source)
    ref = await new_product(source)
    states = await asyncio.gather(*(channel.publish(ref) for _ in range(3)))
    # Each the same product: still under audit, or listed by the time a later one looked.
    ids = {s.pending_ref or (s.listing.external_id if s.listing else None) for s in states}
    assert len(ids) == 1 and None not in ids
    assert (await books(app))["created"] == 1
    await channel.aclose()


async def test_every_call_the_client_makes_is_an_operation_of_the_contract() -> None:
    seen: list[tuple[str, str]] = []

    async def record(request: httpx.Request) -> httpx.Response:
        seen.append((request.method, request.url.path))
        return httpx.Response(200, json={"code": 0, "message": "Success", "data": {}})

    client = tiktok_client(
        settings(tiktok_shop_cipher="ROW_c"),
        token=StaticToken("t"),
        transport=httpx.MockTransport(record),
    )
    calls = [
        client.get_authorized_shops(),
        client.get_warehouses(),
        client.get_categories(),
        client.get_attributes("601226"),
        client.search_products(seller_skus=["x"]),
        client.deactivate_products(["1"]),
        client.activate_products(["1"]),
        client.delete_products(["1"]),
        client.update_price("1", [{"id": "2", "price": {"amount": "1.00", "currency": "USD"}}]),
    ]
    for c in calls:
        await c
    for c2 in (client.recommend_category("t"), client.upload_image(png(), "a.png", "image/png")):
        with pytest.raises(PermanentError):  # the recorded answer has none of their fields
            await c2
    for c3 in (client.create_product({}), client.get_product("1")):
        with pytest.raises(PermanentError):
            await c3
    await client.aclose()
    assert len(seen) == 13
    unknown = [s for s in seen if contract.find(*s) is None]
    assert unknown == []


async def test_the_chaos_tests_reading_of_the_books_counts_live_products(
    app: FastAPI, source: PrintifyClient
) -> None:
    ref = await new_product(source)
    channel = channel_on(app, source)
    await channel.publish(ref)
    assert channel_books.live_listings(await books(app))[ref.product_id] == 0  # under audit
    await settle(channel, ref)
    assert channel_books.live_listings(await books(app)) == {ref.product_id: 1}
    assert channel_books.duplicates(await books(app)) == []
    await channel.aclose()


# --- taking a product down, pricing it again (a seller's decisions) ---------------------------


async def listed(app: FastAPI, source: PrintifyClient, variants: int = 3) -> ProductRef:
    """A product published and through TikTok's audit (live)."""
    ref = await new_product(source, variants)
    channel = channel_on(app, source)
    await channel.publish(ref)
    assert (await settle(channel, ref)).listing is not None
    await channel.aclose()
    return ref


async def on_tiktok(app: FastAPI, ref: ProductRef) -> list[dict[str, Any]]:
    """The TikTok products carrying ``ref``'s marker, deleted ones included."""
    return [p for p in await products(app) if marker_sku(ref.product_id) in p["seller_skus"]]


async def test_a_withdrawn_product_is_deactivated_listed_again_then_deleted(
    app: FastAPI, source: PrintifyClient
) -> None:
    ref = await listed(app, source)
    channel = channel_on(app, source)
    assert channel_books.live_listings(await books(app))[ref.product_id] == 1

    assert await channel.withdraw(ref, delete=False) is True
    (product,) = await on_tiktok(app, ref)
    assert product["status"] == "SELLER_DEACTIVATED"
    assert channel_books.live_listings(await books(app))[ref.product_id] == 0
    assert await channel.withdraw(ref, delete=False) is False  # twice: nothing more to do
    assert await channel.reprice(ref) is False  # TikTok prices only a live product

    # Published again: the same product, on sale again (no second product, no new audit).
    again = await channel_on(app, source).publish(ref)
    assert again.listing is not None and again.listing.external_id == product["product_id"]
    assert channel_books.live_listings(await books(app))[ref.product_id] == 1
    everything = await books(app)
    assert (everything["created"], everything["reactivated"]) == (1, 1)
    assert everything["duplicates"] == []

    assert await channel.withdraw(ref, delete=True) is True
    (product,) = await on_tiktok(app, ref)
    assert product["status"] == "DELETED"
    assert channel_books.live_listings(await books(app))[ref.product_id] == 0
    assert await channel.withdraw(ref, delete=True) is False
    assert await channel.withdraw(ref, delete=False) is False
    await channel.aclose()


async def test_withdrawing_a_product_never_listed_changes_nothing(
    app: FastAPI, source: PrintifyClient
) -> None:
    channel = channel_on(app, source)
    ref = await new_product(source)
    assert await channel.withdraw(ref, delete=False) is False
    assert await channel.withdraw(ref, delete=True) is False
    assert await channel.reprice(ref) is False
    everything = await books(app)
    assert (everything["deactivated"], everything["deleted"], everything["price_updates"]) == (
        0,
        0,
        0,
    )
    await channel.aclose()


async def test_a_product_under_audit_is_deactivated_so_the_audit_lists_nothing(
    app: FastAPI, source: PrintifyClient
) -> None:
    channel = channel_on(app, source)
    ref = await new_product(source)
    assert (await channel.publish(ref)).pending
    assert await channel.withdraw(ref, delete=False) is True
    await asyncio.sleep(AUDIT_S)  # the audit's end passes: still deactivated
    (product,) = await on_tiktok(app, ref)
    assert product["status"] == "SELLER_DEACTIVATED"
    await channel.aclose()


async def test_reprice_sets_each_skus_price_to_its_variants(
    app: FastAPI, source: PrintifyClient
) -> None:
    ref = await listed(app, source, 3)
    product = await source.get_product(ref.shop_id, ref.product_id)
    enabled = [v for v in product.variants if v.is_enabled]
    await reprice(
        source, PRINTIFY_SHOP, product, {v.id: 3100 + 100 * i for i, v in enumerate(enabled)}
    )
    draft = draft_from_printify(await source.get_product(ref.shop_id, ref.product_id))
    expected = {
        marker_sku(ref.product_id, n): f"{v.price_cents / 100:.2f}"
        for n, v in enumerate(draft.variants, 1)
    }
    assert len(set(expected.values())) == 3

    channel = channel_on(app, source)
    assert await channel.reprice(ref) is True
    (booked,) = await on_tiktok(app, ref)
    assert booked["prices"] == expected and booked["status"] == "ACTIVATE"
    assert await channel.reprice(ref) is True  # again: the same prices
    (booked,) = await on_tiktok(app, ref)
    assert booked["prices"] == expected
    assert (await books(app))["price_updates"] == 2
    await channel.aclose()


async def test_a_deactivated_product_is_priced_when_published_again(
    app: FastAPI, source: PrintifyClient
) -> None:
    ref = await listed(app, source, 2)
    channel = channel_on(app, source)
    assert await channel.withdraw(ref, delete=False) is True
    product = await source.get_product(ref.shop_id, ref.product_id)
    await reprice(source, PRINTIFY_SHOP, product, {v.id: 4000 for v in product.variants})
    assert (await channel.publish(ref)).listing is not None
    (booked,) = await on_tiktok(app, ref)
    assert set(booked["prices"].values()) == {"40.00"}
    await channel.aclose()


DEACTIVATE, DELETE = "/product/202309/products/deactivate", "/product/202309/products"


@pytest.mark.parametrize("path", [DEACTIVATE, DELETE])
async def test_a_server_error_on_a_withdrawal_is_sent_again(
    app: FastAPI, source: PrintifyClient, path: str
) -> None:
    """Deactivating and deleting are safe to send again (a second send changes nothing more):
    a 5xx is answered by sending the call again in the same attempt."""
    ref = await listed(app, source, 1)
    flaky = FailsOnce(httpx.ASGITransport(app=app), {path})
    channel = tiktok_channel(settings(), source, fetch_image=Mockups(), transport=flaky)
    delete = path == DELETE
    assert await channel.withdraw(ref, delete=delete) is True
    assert flaky.failed == [path]
    (product,) = await on_tiktok(app, ref)
    assert product["status"] == ("DELETED" if delete else "SELLER_DEACTIVATED")
    await channel.aclose()


class AnswerLost(httpx.AsyncBaseTransport):
    """The first call to ``path`` reaches TikTok, and its answer is lost (a 503 instead)."""

    def __init__(self, inner: httpx.AsyncBaseTransport, path: str) -> None:
        self.inner, self.path, self.sent = inner, path, 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        answer = await self.inner.handle_async_request(request)
        if request.url.path != self.path:
            return answer
        self.sent += 1
        if self.sent > 1:
            return answer
        await answer.aread()
        body = {"code": 36009003, "message": "Internal error. Please retry later."}
        return httpx.Response(503, json={**body, "request_id": "r", "data": None})


async def test_a_delete_whose_answer_was_lost_is_found_done(
    app: FastAPI, source: PrintifyClient
) -> None:
    ref = await listed(app, source, 1)
    lost = AnswerLost(httpx.ASGITransport(app=app), DELETE)
    channel = tiktok_channel(settings(), source, fetch_image=Mockups(), transport=lost)
    assert await channel.withdraw(ref, delete=True) is True  # the second send: not found
    assert lost.sent == 2
    assert (await books(app))["deleted"] == 1
    await channel.aclose()


async def test_a_429_on_a_withdrawal_is_waited_out(app: FastAPI, source: PrintifyClient) -> None:
    ref = await listed(app, source, 1)
    async with hooks(app) as http:
        await http.post("/_sim/limits", json={"qps": 1})
    channel = channel_on(app, source)
    assert await channel.withdraw(ref, delete=False) is True  # search, get, deactivate: 3 s
    assert (await books(app))["rate_limited"] >= 1
    (product,) = await on_tiktok(app, ref)
    assert product["status"] == "SELLER_DEACTIVATED"
    await channel.aclose()
