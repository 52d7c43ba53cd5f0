"""The Etsy channel against the Etsy simulator's app in process (``httpx.ASGITransport``), with
the Printify simulator's app as the source of products, and mockups fetched as PNG bytes."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from shared.adapters.vendors.channels import PENDING, ProductRef, SalesChannel
from shared.adapters.vendors.etsy import (
    CUSTOM_PROPERTY_IDS,
    MARKER_PREFIX,
    TRANSIENT_RETRIES,
    EtsyChannel,
    EtsyClient,
    EtsySettings,
    etsy_channel,
    etsy_client,
    etsy_tags,
    etsy_title,
    inventory_for,
    marker_tag,
)
from shared.adapters.vendors.listing import DraftVariant, ListingDraft, draft_from_printify
from shared.adapters.vendors.printify import PrintifyClient
from shared.platform import waits
from shared.platform.db import open_pool
from shared.platform.errors import (
    ConfigError,
    PermanentError,
    PodError,
    RateLimited,
    RetryableError,
)
from simulators import etsy as etsy_sim
from simulators import printify as printify_sim
from tests.support.channel_books import books_of
from tests.support.printify import TITLE, create_product, in_process, png, reprice

SHOP = 51234567  # the Etsy shop
# Its processing profiles, as the simulator numbers them (made to order, ready to ship).
MADE_TO_ORDER, READY_TO_SHIP = SHOP * 10 + 1, SHOP * 10 + 2
PRINTIFY_SHOP = str(printify_sim.SHOP_ID)
KEYSTRING, SECRET, TOKEN = "ks-KEYSTRING-1a2b", "ss-SHARED-SECRET-3c4d", "4242.tok-ACCESS-5e6f"


def settings(**over: Any) -> EtsySettings:
    values: dict[str, Any] = {
        "etsy_api_url": "http://etsy",
        "etsy_api_key": KEYSTRING,
        "etsy_shared_secret": SECRET,
        "etsy_access_token": TOKEN,
        "etsy_shop_id": SHOP,
        "etsy_shipping_profile_id": 9001,
        "etsy_max_images": 2,
    }
    return EtsySettings(**{**values, **over})


class Mockups:
    """An injected ``fetch_image``: PNG bytes for any URL, the URLs asked recorded; it fails
    (a crash mid-publish) from the ``fail_at``-th call on."""

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
def etsy_app(monkeypatch: pytest.MonkeyPatch) -> FastAPI:
    # A roomy budget: throttling has its own tests (below), these test the listings.
    monkeypatch.setenv("SIM_ETSY_QPS", "50")
    return etsy_sim.create_app()


def hooks(app: FastAPI) -> httpx.AsyncClient:
    """Raw access to the Etsy simulator: its test hooks, and Etsy's API as another app (so the
    test's own reads never spend the channel's budget)."""
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://etsy",
        headers={"x-api-key": "inspector:secret", "Authorization": f"Bearer {TOKEN}"},
    )


async def channel_app(app: FastAPI) -> dict[str, int]:
    """The books of the channel's app (its API key)."""
    return dict((await books(app))["apps"][etsy_sim.app_key(KEYSTRING)])


async def books(app: FastAPI) -> dict[str, Any]:
    async with hooks(app) as http:
        return dict((await http.get("/_sim/books")).json())


async def shop_books(app: FastAPI) -> dict[str, Any]:
    return dict((await books(app))["shops"].get(str(SHOP), {"listings": [], "created": 0}))


def channel_on(
    app: FastAPI, source: PrintifyClient, mockups: Mockups | None = None, **over: Any
) -> EtsyChannel:
    return etsy_channel(
        settings(**over),
        source,
        fetch_image=mockups or Mockups(),
        transport=httpx.ASGITransport(app=app),
    )


async def new_product(
    source: PrintifyClient, variant_count: int = 3, *, bigger_costs_more: bool = False
) -> ProductRef:
    # Each product its own SKUs, as the printify stage makes them (pod-<16 hex>-<variant>).
    made = await create_product(
        source,
        PRINTIFY_SHOP,
        variant_count=variant_count,
        price_cents=2499,
        sku_prefix=f"pod-{uuid.uuid4().hex[:16]}",
    )
    if bigger_costs_more:
        # One size sells for more: Etsy must be told the price depends on the size.
        enabled = [v for v in made.variants if v.is_enabled]
        await reprice(source, PRINTIFY_SHOP, made, {enabled[-1].id: 2999})
    return ProductRef(PRINTIFY_SHOP, str(made.id), TITLE)


async def draft_of(source: PrintifyClient, ref: ProductRef) -> ListingDraft:
    return draft_from_printify(await source.get_product(ref.shop_id, ref.product_id))


async def listing_with(app: FastAPI, listing_id: str) -> dict[str, Any]:
    async with hooks(app) as http:
        resp = await http.get(
            f"/v3/application/listings/{listing_id}", params={"includes": "Images,Inventory"}
        )
    assert resp.status_code == 200, resp.text
    return dict(resp.json())


# --- publishing ---------------------------------------------------------------------------------


async def test_the_processing_profile_is_the_configured_one_or_the_shops_made_to_order(
    etsy_app: FastAPI, source: PrintifyClient
) -> None:
    # compose passes ETSY_READINESS_STATE_ID= when none is configured.
    assert settings(etsy_readiness_state_id="").etsy_readiness_state_id is None
    resolved = channel_on(etsy_app, source, etsy_readiness_state_id="")
    assert await resolved.readiness_state_id() == MADE_TO_ORDER
    before = (await channel_app(etsy_app))["requests"]
    assert await resolved.readiness_state_id() == MADE_TO_ORDER  # read once
    assert (await channel_app(etsy_app))["requests"] == before

    configured = channel_on(etsy_app, source, etsy_readiness_state_id=READY_TO_SHIP)
    state = await configured.publish(await new_product(source, 2))
    assert state.listing is not None
    listing = await listing_with(etsy_app, state.listing.external_id)
    offerings = [p["offerings"][0] for p in listing["inventory"]["products"]]
    assert {o["readiness_state_id"] for o in offerings} == {READY_TO_SHIP}


async def test_a_processing_profile_of_another_shop_is_refused_by_etsy(
    etsy_app: FastAPI, source: PrintifyClient
) -> None:
    wrong = channel_on(etsy_app, source, etsy_readiness_state_id=MADE_TO_ORDER + 10)
    with pytest.raises(PermanentError, match="not a processing profile"):
        await wrong.publish(await new_product(source, 1))
    assert (await shop_books(etsy_app))["created"] == 0


async def test_a_shop_without_a_made_to_order_profile_is_a_configuration_error(
    source: PrintifyClient,
) -> None:
    async def profiles(request: httpx.Request) -> httpx.Response:
        assert request.url.path.endswith("/readiness-state-definitions")
        body = {
            "count": 1,
            "results": [{"readiness_state_id": 5, "readiness_state": "ready_to_ship"}],
        }
        return httpx.Response(200, json=body)

    channel = etsy_channel(
        settings(), source, fetch_image=Mockups(), transport=httpx.MockTransport(profiles)
    )
    with pytest.raises(ConfigError, match=r"ETSY_READINESS_STATE_ID: .* no made_to_order"):
        await channel.readiness_state_id()


async def test_publish_makes_one_active_listing_with_a_product_per_variant_and_its_images(
    etsy_app: FastAPI, source: PrintifyClient
) -> None:
    mockups = Mockups()
    channel = channel_on(etsy_app, source, mockups)
    ref = await new_product(source, 3, bigger_costs_more=True)
    draft = await draft_of(source, ref)

    state = await channel.publish(ref)

    assert state.listing is not None and state.refused is None
    lid = state.listing.external_id
    assert state.listing.handle == f"https://www.etsy.com/listing/{lid}"
    shop = await shop_books(etsy_app)
    assert (shop["created"], shop["activated"], len(shop["listings"])) == (1, 1, 1)
    booked = shop["listings"][0]
    assert str(booked["listing_id"]) == lid and booked["state"] == "active"
    assert sorted(booked["skus"]) == sorted(v.sku for v in draft.variants)
    assert booked["products"] == len(draft.variants) == 3
    assert booked["images"] == 2 == min(len(draft.images), 2)
    assert marker_tag(ref.product_id) in booked["tags"]
    # The mockups, default first, in rank order.
    assert mockups.urls == list(draft.images[:2])

    listing = await listing_with(etsy_app, lid)
    assert listing["title"] == TITLE and listing["taxonomy_id"] == 482  # a tee
    assert listing["shipping_profile_id"] == 9001
    assert [i["rank"] for i in listing["images"]] == [1, 2]
    inventory = listing["inventory"]
    by_sku = {p["sku"]: p for p in inventory["products"]}
    for variant in draft.variants:
        product = by_sku[variant.sku]
        offering = product["offerings"][0]
        assert offering["price"]["amount"] == variant.price_cents
        assert offering["is_enabled"] and offering["quantity"] == 999
        # No ETSY_READINESS_STATE_ID: the shop's made-to-order processing profile.
        assert offering["readiness_state_id"] == MADE_TO_ORDER
        values = {pv["property_name"]: pv["values"][0] for pv in product["property_values"]}
        assert values == dict(variant.options)
    sizes = CUSTOM_PROPERTY_IDS[1]
    assert inventory["price_on_property"] == [sizes]  # only the size changes the price
    assert inventory["quantity_on_property"] == []


async def test_publishing_again_makes_no_duplicate(
    etsy_app: FastAPI, source: PrintifyClient
) -> None:
    ref = await new_product(source)
    first = await channel_on(etsy_app, source).publish(ref)
    # A redelivery to another process: it knows nothing, and finds the listing by its marker.
    again = await channel_on(etsy_app, source).publish(ref)
    assert again == first
    # A redelivery to the same process: one getListing call.
    channel = channel_on(etsy_app, source)
    await channel.publish(ref)
    before = await channel_app(etsy_app)
    assert await channel.publish(ref) == first
    assert (await channel_app(etsy_app))["requests"] - before["requests"] == 1

    everything = await books(etsy_app)
    assert everything["duplicates"] == []
    assert everything["created"] == 1 and everything["activated"] == 1
    # Another product is another listing.
    other = await channel_on(etsy_app, source).publish(await new_product(source))
    assert other.listing is not None and first.listing is not None
    assert other.listing.external_id != first.listing.external_id
    assert (await books(etsy_app))["duplicates"] == []


async def test_a_listing_left_half_made_is_finished_never_duplicated(
    etsy_app: FastAPI, source: PrintifyClient
) -> None:
    # 1. The attempt died after creating the draft (no inventory, no image).
    ref = await new_product(source)
    draft = await draft_of(source, ref)
    async with etsy_client(settings(), transport=httpx.ASGITransport(app=etsy_app)) as etsy:
        created = await etsy.create_draft_listing(
            SHOP,
            {
                "quantity": 999, "title": TITLE, "description": "d", "price": "24.99",
                "who_made": "i_did", "when_made": "made_to_order", "taxonomy_id": 482,
                "shipping_profile_id": 9001, "readiness_state_id": MADE_TO_ORDER,
                "tags": [marker_tag(ref.product_id)],
            },
        )  # fmt: skip
    channel = channel_on(etsy_app, source)
    assert (await channel.check(ref)) == PENDING  # a draft: not listed yet
    finished = await channel.reconcile(ref)
    assert finished is not None and finished.listing is not None
    assert finished.listing.external_id == str(created.listing_id)
    listing = await listing_with(etsy_app, finished.listing.external_id)
    assert listing["state"] == "active" and len(listing["images"]) == 2
    assert sorted(p["sku"] for p in listing["inventory"]["products"]) == sorted(
        v.sku for v in draft.variants
    )

    # 2. The attempt died fetching the second mockup: inventory and one image are there.
    half = await new_product(source)
    crashing = Mockups(fail_at=2)
    with pytest.raises(RetryableError):
        await channel_on(etsy_app, source, crashing).publish(half)
    [stuck] = [
        lst
        for lst in (await shop_books(etsy_app))["listings"]
        if marker_tag(half.product_id) in lst["tags"]
    ]
    assert (stuck["state"], stuck["images"], stuck["products"]) == ("draft", 1, 3)
    # The redelivery (publish, not reconcile) uploads only what is missing, then activates.
    redo = Mockups()
    state = await channel_on(etsy_app, source, redo).publish(half)
    assert state.listing is not None and state.listing.external_id == str(stuck["listing_id"])
    assert redo.urls == [(await draft_of(source, half)).images[1]]
    listing = await listing_with(etsy_app, state.listing.external_id)
    assert listing["state"] == "active" and len(listing["images"]) == 2

    everything = await books(etsy_app)
    assert everything["created"] == 2 and everything["duplicates"] == []
    # Never published at all: nothing to reconcile.
    assert await channel.reconcile(await new_product(source)) is None


async def test_check_tells_listed_refused_and_pending(
    etsy_app: FastAPI, source: PrintifyClient
) -> None:
    channel = channel_on(etsy_app, source)
    listed = await new_product(source)
    state = await channel.publish(listed)
    assert (await channel.check(listed)) == state and state.listing is not None

    async with hooks(etsy_app) as http:
        # The seller deactivates it.
        resp = await http.patch(
            f"/v3/application/shops/{SHOP}/listings/{state.listing.external_id}",
            data={"state": "inactive"},
        )
        assert resp.status_code == 200, resp.text
    refused = await channel.check(listed)
    assert refused.refused is not None and "deactivated" in refused.refused
    reconciled = await channel.reconcile(listed)
    assert reconciled is not None and reconciled.refused == refused.refused
    with pytest.raises(PermanentError, match="deactivated"):
        await channel.publish(listed)  # not listed again behind the seller's back
    assert (await books(etsy_app))["created"] == 1

    expired = await new_product(source)
    expired_state = await channel.publish(expired)
    assert expired_state.listing is not None
    deleted = await new_product(source)
    deleted_state = await channel.publish(deleted)
    assert deleted_state.listing is not None
    async with hooks(etsy_app) as http:
        resp = await http.post(
            f"/_sim/listings/{expired_state.listing.external_id}", json={"state": "expired"}
        )
        assert resp.status_code == 200
        resp = await http.delete(f"/v3/application/listings/{deleted_state.listing.external_id}")
        assert resp.status_code == 204
    refused = await channel.check(expired)
    assert refused.refused is not None and "expired" in refused.refused
    refused = await channel.check(deleted)
    assert refused.refused is not None and "deleted" in refused.refused


# --- throttling ---------------------------------------------------------------------------------


async def test_publishing_several_products_keeps_to_the_per_second_budget(
    monkeypatch: pytest.MonkeyPatch, source: PrintifyClient
) -> None:
    monkeypatch.setenv("SIM_ETSY_QPS", "8")
    app = etsy_sim.create_app()
    channel = channel_on(app, source, etsy_max_images=1)
    refs = [await new_product(source, 2) for _ in range(3)]

    states = await asyncio.gather(*(channel.publish(ref) for ref in refs))

    assert all(s.listing is not None for s in states)
    everything = await books(app)
    assert everything["rate_limited"] == 0
    assert everything["created"] == everything["activated"] == 3
    assert everything["duplicates"] == []
    async with hooks(app) as http:
        times = (await http.get("/_sim/request_times")).json()[etsy_sim.app_key(KEYSTRING)]
    # Unpaced, these would all go within a fraction of a second.
    assert len(times) > 16
    # Never more than eight requests within one second.
    assert all(later - earlier >= 0.99 for earlier, later in zip(times, times[8:], strict=False))


@pytest.mark.parametrize("shared", [True, False], ids=["one-budget", "per-process"])
async def test_two_publishers_of_one_app_share_its_per_second_budget(
    monkeypatch: pytest.MonkeyPatch, source: PrintifyClient, migrated_db: str, shared: bool
) -> None:
    """Two publishers (two processes: each its own client and budget object) list at once for
    one app allowed 5 requests a second. Sharing the budget in PostgreSQL, Etsy never answers
    429; each pacing itself to the app's limit alone, together they send twice that."""
    monkeypatch.setenv("SIM_ETSY_QPS", "5")
    app = etsy_sim.create_app()
    keystring = f"ks-{uuid.uuid4().hex[:12]}"  # a budget of its own in the session's database
    pools = [await open_pool(migrated_db, max_size=2) for _ in range(2)]
    channels = [
        etsy_channel(
            settings(etsy_api_key=keystring, etsy_max_images=1),
            source,
            fetch_image=Mockups(),
            pool=pool if shared else None,
            transport=httpx.ASGITransport(app=app),
        )
        for pool in pools
    ]
    refs = [await new_product(source, 2) for _ in channels]
    try:
        states = await asyncio.gather(*(c.publish(r) for c, r in zip(channels, refs, strict=True)))
    finally:
        for channel in channels:
            await channel.aclose()
        for pool in pools:
            await pool.close()

    assert all(state.listing is not None for state in states)
    app_books = (await books(app))["apps"][etsy_sim.app_key(keystring)]
    assert app_books["requests"] > 16  # enough to meet the limit: 2 listings of a dozen calls
    if shared:
        assert app_books["rate_limited"] == 0
    else:  # the control: the test can tell the difference
        assert app_books["rate_limited"] > 0


async def test_a_spent_day_budget_raises_rate_limited(
    monkeypatch: pytest.MonkeyPatch, source: PrintifyClient
) -> None:
    monkeypatch.setenv("SIM_ETSY_QPD", "4")
    app = etsy_sim.create_app()
    ref = await new_product(source)
    channel = channel_on(app, source, etsy_day_exhausted_wait_s=1800)
    # Scanning the shop for the marker takes five calls: the fourth answer says the day's
    # budget is spent, and the fifth is not sent.
    with pytest.raises(RateLimited) as caught:
        await channel.publish(ref)
    assert caught.value.retry_after is not None and 1790 <= caught.value.retry_after <= 1800
    assert caught.value.vendor == "etsy"
    app_books = await channel_app(app)
    assert app_books["requests"] == 4 and app_books["rate_limited_day"] == 0

    # A client that has not seen it yet is told by Etsy: 429 with the window's Retry-After.
    fresh = channel_on(app, source)
    with pytest.raises(RateLimited) as told:
        await fresh.check(ref)
    assert told.value.status == 429
    assert told.value.retry_after is not None and told.value.retry_after > 80_000
    assert (await channel_app(app))["rate_limited_day"] == 1
    # ... and from then on it sends nothing either.
    with pytest.raises(RateLimited):
        await fresh.check(ref)
    assert (await channel_app(app))["requests"] == 5


def _mock_etsy(
    answer: Callable[[httpx.Request, int], httpx.Response],
) -> tuple[EtsyClient, list[float]]:
    sent: list[float] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        sent.append(time.monotonic())
        return answer(request, len(sent))

    client = EtsyClient(
        api_key=KEYSTRING,
        shared_secret=SECRET,
        access_token=TOKEN,
        base_url="http://etsy",
        transport=httpx.MockTransport(handler),
    )
    return client, sent


async def test_a_server_error_is_sent_again_unless_the_call_could_list_twice() -> None:
    methods: list[str] = []

    def flaky(request: httpx.Request, n: int) -> httpx.Response:
        methods.append(request.method)
        if n == 1 or request.method == "POST":
            return httpx.Response(502, json={"error": "bad gateway"})
        return httpx.Response(200, json={"listing_id": 7, "state": "draft"})

    client, _ = _mock_etsy(flaky)
    async with client:
        assert (await client.get_listing(7)).listing_id == 7
        with pytest.raises(RetryableError):
            await client.create_draft_listing(SHOP, {"title": "x"})
    # A GET may be sent again; a createDraftListing could make a second listing, so it is not
    # (the next attempt finds a listing it made by its marker instead).
    assert methods == ["GET", "GET", "POST"]


async def test_a_spent_second_is_waited_out_before_the_next_call() -> None:
    def answer(_request: httpx.Request, n: int) -> httpx.Response:
        # Other clients of the app used this second: Etsy says none is left.
        remaining = "0" if n == 1 else "5"
        headers = {"x-limit-per-second": "10", "x-remaining-this-second": remaining}
        return httpx.Response(200, json={"listing_id": n}, headers=headers)

    client, sent = _mock_etsy(answer)
    async with client:
        await client.get_listing(1)
        answered = time.monotonic()
        await asyncio.gather(client.get_listing(2), client.get_listing(3))
    assert len(sent) == 3
    assert sent[1] - answered >= 0.95


async def test_a_call_held_back_by_etsys_limits_says_what_it_waits_for() -> None:
    """A job whose Etsy call waits (a spent second, a 429's Retry-After, the sends before it)
    says so (shared.platform.waits), with the limit it waits for and until about when."""

    def answer(_request: httpx.Request, n: int) -> httpx.Response:
        headers = {"x-limit-per-second": "10", "x-remaining-this-second": "5"}
        if n == 1:
            headers["x-remaining-this-second"] = "0"  # the app's second is spent
        if n == 2:
            return httpx.Response(429, json={"error": "slow down"}, headers={"Retry-After": "1"})
        return httpx.Response(200, json={"listing_id": n}, headers=headers)

    client, _ = _mock_etsy(answer)
    seen: list[tuple[str, str, str, float]] = []
    stop = asyncio.Event()

    async def watch() -> None:
        while not stop.is_set():
            for w in waits.snapshot():
                until = w.until.timestamp() - time.time() if w.until else -1.0
                seen.append((w.job_id, w.kind, w.what, until))
            await asyncio.sleep(0.02)

    async def job(name: str, listing_id: int) -> None:
        waits.working_for(name)
        await client.get_listing(listing_id)

    watcher = asyncio.create_task(watch())
    async with client:
        await job("job-first", 1)
        await asyncio.gather(job("job-second", 2), job("job-third", 3))
    stop.set()
    await watcher
    whats = {(job_id, what) for job_id, kind, what, _ in seen if kind == "vendor_limit"}
    assert {what for _, what in whats} >= {
        "Etsy requests: this second's budget of the app is spent (x-remaining-this-second: 0)",
        "Etsy's rate limit (429: Retry-After 1s)",
    }
    # Both later jobs waited (the first was sent at once), each named.
    assert {job_id for job_id, _ in whats} == {"job-second", "job-third"}
    assert all(0 <= until <= 1.2 for *_, until in seen if until >= 0)
    assert waits.snapshot() == []


async def test_a_short_429_is_waited_out_a_long_one_raised() -> None:
    def answer(_request: httpx.Request, n: int) -> httpx.Response:
        if n == 1:
            return httpx.Response(429, json={"error": "slow down"}, headers={"Retry-After": "0"})
        if n == 3:
            return httpx.Response(429, json={"error": "slow down"}, headers={"Retry-After": "30"})
        return httpx.Response(200, json={"listing_id": n})

    client, sent = _mock_etsy(answer)
    async with client:
        assert (await client.get_listing(1)).listing_id == 2  # sent again
        with pytest.raises(RateLimited) as caught:
            await client.get_listing(1)
    assert caught.value.retry_after == 30.0 and len(sent) == 3


# --- secrets ------------------------------------------------------------------------------------


def _assert_clean(error: PodError) -> None:
    for text in (str(error), error.describe(), repr(error), error.message):
        for secret in (KEYSTRING, SECRET, TOKEN):
            assert secret not in text, (secret, text)


async def test_no_error_carries_a_credential(
    monkeypatch: pytest.MonkeyPatch, source: PrintifyClient
) -> None:
    errors: list[PodError] = []

    async def caught(call: Awaitable[object]) -> None:
        try:
            await call
        except PodError as exc:
            errors.append(exc)
        else:
            raise AssertionError("expected a failure")

    # An API key Etsy does not know (403), a validation error (400), a rate limit (429 and
    # the day's budget), a dropped connection and an answer that echoes the credentials.
    monkeypatch.setenv("SIM_ETSY_API_KEYS", "other:key")
    monkeypatch.setenv("SIM_ETSY_QPD", "1")
    unknown_key = etsy_sim.create_app()
    monkeypatch.delenv("SIM_ETSY_API_KEYS")
    limited = etsy_sim.create_app()
    ref = await new_product(source)
    await caught(channel_on(unknown_key, source).publish(ref))
    async with etsy_client(settings(), transport=httpx.ASGITransport(app=limited)) as etsy:
        await caught(etsy.create_draft_listing(SHOP, {"title": "no price"}))
        await caught(etsy.get_listing(1))
    await caught(channel_on(limited, source).check(ref))

    def echo(request: httpx.Request, n: int) -> httpx.Response:
        if n <= 1 + TRANSIENT_RETRIES:  # the first call, sent again and again
            raise httpx.ConnectError(f"refused: {request.headers['x-api-key']}", request=request)
        body = {"error": f"bad {request.headers['authorization']} {request.headers['x-api-key']}"}
        return httpx.Response(401, json=body)

    client, _ = _mock_etsy(echo)
    async with client:
        await caught(client.get_listing(1))
        await caught(client.get_listing(1))

    assert [e.status for e in errors] == [403, 400, 429, 429, None, 401]
    assert isinstance(errors[2], RateLimited) and isinstance(errors[3], RateLimited)
    for error in errors:
        _assert_clean(error)
    assert "***" in str(errors[-1])


# --- Etsy's rules -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "title",
    [
        "Moon Cat Tee",
        "Cats & Dogs & Birds: 100% + 50% + more: tee",
        "Price $20 — best ♥ tee 😺 for cats ™ ©",
        "word " * 60,
        "\tTabs\nand  lines\r\n",
        "x" * 200,
    ],
)
def test_titles_are_made_acceptable_to_etsy(title: str) -> None:
    made = etsy_title(title)
    assert made and len(made) <= 140
    assert etsy_sim._title_problem(made) is None, made
    # What was allowed is kept: the words survive.
    if title == "Moon Cat Tee":
        assert made == title
    if title.startswith("Cats"):
        assert made.count("&") == made.count(":") == made.count("%") == made.count("+") == 1
        assert "Dogs and Birds" in made


def test_tags_are_made_acceptable_to_etsy() -> None:
    raw = [
        "Home & Living",
        "cat",
        "CAT",
        "a very long tag that goes on and on",
        "!!!",
        "t-shirt",
        "mom's gift",
        *[f"tag{i}" for i in range(20)],
    ]
    tags = etsy_tags(raw)
    assert len(tags) == 13
    assert all(etsy_sim._tag_problem(t) is None for t in tags), tags
    assert tags[:5] == ["Home Living", "cat", "a very long tag that", "t-shirt", "mom's gift"]
    assert etsy_tags(raw, 3) == tags[:3]
    marker = marker_tag("5d39b411749d0a000f30e0f4")
    assert marker == "pod-49d0a000f30e0f4" and marker.startswith(MARKER_PREFIX)
    assert etsy_sim._tag_problem(marker) is None


def test_the_inventory_names_what_prices_and_skus_depend_on() -> None:
    colours, sizes = CUSTOM_PROPERTY_IDS

    def variant(sku: str, colour: str, size: str, price: int) -> DraftVariant:
        return DraftVariant(sku, price, (("Colors", colour), ("Sizes", size)))

    draft = ListingDraft(
        marker="m",
        title="t",
        description="d",
        tags=(),
        options=(("Colors", ("White", "Black")), ("Sizes", ("S (slim)", "XL"))),
        variants=(
            variant("a", "White", "S (slim)", 2000),
            variant("b", "Black", "S (slim)", 2000),
            variant("c", "White", "XL", 2500),
        ),
        images=(),
    )
    inventory = inventory_for(draft, quantity=5, readiness_state_id=MADE_TO_ORDER)
    assert inventory["price_on_property"] == [sizes]
    assert inventory["sku_on_property"] == [colours, sizes]
    values = [pv["values"][0] for pv in inventory["products"][0]["property_values"]]
    assert values == ["White", "S slim"]  # Etsy refuses parentheses
    same = ListingDraft(**{**draft.__dict__, "variants": draft.variants[:2]})
    same_price = inventory_for(same, quantity=5, readiness_state_id=MADE_TO_ORDER)
    assert same_price["price_on_property"] == []
    too_many = ListingDraft(**{**draft.__dict__, "options": (*draft.options, ("Fit", ("a",)))})
    with pytest.raises(PermanentError, match="at most 2"):
        inventory_for(too_many, quantity=5, readiness_state_id=MADE_TO_ORDER)
    # What the channel builds, the simulator takes.
    body = json.loads(json.dumps(inventory))
    listing = etsy_sim.Listing(1, 1, 1, {"title": "t", "description": "d"})
    stored = etsy_sim._inventory(body, listing, 2)
    assert len(stored["products"]) == 3


async def test_the_channel_is_a_sales_channel(source: PrintifyClient, etsy_app: FastAPI) -> None:
    channel: SalesChannel = channel_on(etsy_app, source)
    assert channel.name == "etsy"


async def test_a_listing_without_its_id_is_a_permanent_error_naming_it() -> None:
    def no_id(request: httpx.Request, n: int) -> httpx.Response:
        return httpx.Response(200, json={"state": "draft", "tags": ["pod-x"]})

    client, _ = _mock_etsy(no_id)
    async with client:
        with pytest.raises(PermanentError, match=r"getListing.*listing_id") as caught:
            await client.get_listing(7)
    assert caught.value.vendor == "etsy"


# --- taking a listing down, pricing it again (a seller's decisions) ---------------------------


def live(everything: dict[str, Any], ref: ProductRef) -> int:
    return books_of("etsy").live_listings(everything)[marker_tag(ref.product_id)]


class Flaky(httpx.AsyncBaseTransport):
    """The simulator behind a network that fails the first ``times`` calls of ``method``:
    answered ``status`` without reaching Etsy, or (``lost``) reaching it with the answer lost
    on the way back."""

    def __init__(
        self, app: FastAPI, method: str, status: int, *, times: int = 1, lost: bool = False
    ) -> None:
        self.inner = httpx.ASGITransport(app=app)
        self.method, self.status, self.left, self.lost = method, status, times, lost
        self.sent: list[str] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.sent.append(request.method)
        if request.method != self.method or self.left <= 0:
            return await self.inner.handle_async_request(request)
        self.left -= 1
        if self.lost:
            await (await self.inner.handle_async_request(request)).aread()
        headers = {"Retry-After": "0"} if self.status == 429 else {}
        return httpx.Response(self.status, json={"error": "try again"}, headers=headers)


async def test_a_withdrawn_listing_is_hidden_kept_listed_again_then_deleted(
    etsy_app: FastAPI, source: PrintifyClient
) -> None:
    channel = channel_on(etsy_app, source)
    ref = await new_product(source)
    first = await channel.publish(ref)
    assert first.listing is not None and live(await books(etsy_app), ref) == 1

    assert await channel.withdraw(ref, delete=False) is True
    listing = await listing_with(etsy_app, first.listing.external_id)
    # Hidden from buyers, kept whole (inventory, images) for a later publish.
    assert listing["state"] == "inactive" and len(listing["images"]) == 2
    assert live(await books(etsy_app), ref) == 0
    # Twice (a redelivery): nothing more to take down.
    assert await channel.withdraw(ref, delete=False) is False
    # check says what happened; another process (no memory of it) finds it withdrawn too.
    assert "withdrawn" in str((await channel_on(etsy_app, source).check(ref)).refused)

    # The seller publishes it again: the same listing, active, its tags the product's.
    again = await channel_on(etsy_app, source).publish(ref)
    assert again == first
    relisted = await listing_with(etsy_app, first.listing.external_id)
    assert relisted["state"] == "active" and "podengine withdrawn" not in relisted["tags"]
    assert relisted["tags"][0] == marker_tag(ref.product_id)
    everything = await books(etsy_app)
    assert live(everything, ref) == 1 and everything["created"] == 1

    assert await channel.withdraw(ref, delete=True) is True
    shop = await shop_books(etsy_app)
    assert shop["deleted"] == 1 and shop["listings"] == []
    assert await channel.withdraw(ref, delete=True) is False
    assert await channel_on(etsy_app, source).withdraw(ref, delete=False) is False
    assert await channel.reprice(ref) is False


async def test_a_listing_deactivated_on_etsy_is_still_not_listed_again(
    etsy_app: FastAPI, source: PrintifyClient
) -> None:
    """Only the engine's own withdrawal is the engine's to undo: a deactivation by the seller on
    Etsy stays a human's decision, and withdraw has nothing to take down."""
    channel = channel_on(etsy_app, source)
    ref = await new_product(source)
    state = await channel.publish(ref)
    assert state.listing is not None
    async with hooks(etsy_app) as http:
        resp = await http.patch(
            f"/v3/application/shops/{SHOP}/listings/{state.listing.external_id}",
            data={"state": "inactive"},
        )
        assert resp.status_code == 200, resp.text
    assert await channel.withdraw(ref, delete=False) is False
    with pytest.raises(PermanentError, match="deactivated"):
        await channel.publish(ref)


async def test_withdrawing_a_product_never_listed_changes_nothing(
    etsy_app: FastAPI, source: PrintifyClient
) -> None:
    channel = channel_on(etsy_app, source)
    ref = await new_product(source)
    assert await channel.withdraw(ref, delete=False) is False
    assert await channel.withdraw(ref, delete=True) is False
    assert await channel.reprice(ref) is False
    shop = await shop_books(etsy_app)
    assert (shop["created"], shop["deleted"], shop["inventory_updates"]) == (0, 0, 0)


async def test_reprice_writes_each_skus_new_price(
    etsy_app: FastAPI, source: PrintifyClient
) -> None:
    channel = channel_on(etsy_app, source)
    ref = await new_product(source, 3)
    state = await channel.publish(ref)
    assert state.listing is not None
    product = await source.get_product(ref.shop_id, ref.product_id)
    enabled = [v for v in product.variants if v.is_enabled]
    wanted = {v.id: 3100 + 100 * i for i, v in enumerate(enabled)}
    await reprice(source, PRINTIFY_SHOP, product, wanted)
    draft = await draft_of(source, ref)
    expected = {v.sku: v.price_cents for v in draft.variants}
    assert sorted(expected.values()) == sorted(wanted.values())

    assert await channel.reprice(ref) is True
    (booked,) = (await shop_books(etsy_app))["listings"]
    assert booked["prices"] == expected and booked["state"] == "active"
    # Again (a redelivery): the same prices, the same listing.
    assert await channel_on(etsy_app, source).reprice(ref) is True
    (booked,) = (await shop_books(etsy_app))["listings"]
    assert booked["prices"] == expected and booked["skus"] == sorted(expected)


@pytest.mark.parametrize("status", [503, 429])
async def test_a_failed_deactivation_is_sent_again(
    etsy_app: FastAPI, source: PrintifyClient, status: int
) -> None:
    ref = await new_product(source)
    assert (await channel_on(etsy_app, source).publish(ref)).listing is not None
    flaky = Flaky(etsy_app, "PATCH", status)
    channel = etsy_channel(settings(), source, fetch_image=Mockups(), transport=flaky)
    assert await channel.withdraw(ref, delete=False) is True
    assert flaky.sent.count("PATCH") == 2
    assert live(await books(etsy_app), ref) == 0


async def test_a_delete_whose_answer_was_lost_is_sent_again_and_found_done(
    etsy_app: FastAPI, source: PrintifyClient
) -> None:
    """Etsy deleted it but the answer was lost (a gateway's 502): deleteListing is sent again
    (a delete cannot do anything twice), Etsy answers 404, and the listing is gone."""
    ref = await new_product(source)
    assert (await channel_on(etsy_app, source).publish(ref)).listing is not None
    flaky = Flaky(etsy_app, "DELETE", 502, lost=True)
    channel = etsy_channel(settings(), source, fetch_image=Mockups(), transport=flaky)
    assert await channel.withdraw(ref, delete=True) is True
    assert flaky.sent.count("DELETE") == 2
    shop = await shop_books(etsy_app)
    assert shop["deleted"] == 1 and shop["listings"] == []
