"""Etsy's published contract (the extract in simulators/contracts/etsy) against requests: what it
refuses, and every request today's Etsy client and channel send, replayed through it."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from shared.adapters.vendors.channels import PENDING, ProductRef
from shared.adapters.vendors.etsy import (
    ENGINE_SCOPES,
    EtsyClient,
    EtsySettings,
    etsy_channel,
    etsy_client,
    marker_tag,
)
from simulators import etsy as etsy_sim
from simulators import printify as printify_sim
from simulators.contracts.etsy import OPERATIONS, answer_problems, contract
from simulators.contracts.openapi import CheckedRequest, error_body
from tests.support.printify import create_product, in_process, png

SHOP = 51234567
MADE_TO_ORDER = SHOP * 10 + 1
CREDENTIALS = {"x-api-key": "ks:secret", "Authorization": "Bearer 4242.token"}
DRAFT = {
    "quantity": "999",
    "title": "Moon Cat",
    "description": "A cat on the moon",
    "price": "24.99",
    "who_made": "i_did",
    "when_made": "made_to_order",
    "taxonomy_id": "482",
    "shipping_profile_id": "9001",
    "readiness_state_id": str(MADE_TO_ORDER),
    "tags": "pod-abc,cats",
}
OFFERING = {"price": 24.99, "quantity": 999, "is_enabled": True, "readiness_state_id": 7}


def sent(
    method: str, path: str, *, headers: dict[str, str] | None = None, **kw: Any
) -> CheckedRequest:
    """A request as httpx sends it, checked against Etsy's contract."""
    url = "https://openapi.etsy.com" + path
    request = httpx.Request(method, url, headers={**CREDENTIALS, **(headers or {})}, **kw)
    body = request.read()
    return contract().check_request(
        request.method,
        request.url.path,
        query=request.url.params.multi_items(),
        headers=request.headers,
        body=body,
    )


def problems(checked: CheckedRequest) -> list[str]:
    return [str(p) for p in checked.problems]


LISTINGS = f"/v3/application/shops/{SHOP}/listings"


def test_etsys_contract_refuses_what_etsys_document_refuses() -> None:
    assert sent("POST", LISTINGS, data=DRAFT).ok
    # A listing's fields go form-encoded; JSON is refused.
    assert problems(sent("POST", LISTINGS, json={k: v for k, v in DRAFT.items()})) == [
        "content-type: createDraftListing takes application/x-www-form-urlencoded, not "
        "application/json"
    ]
    missing = {k: v for k, v in DRAFT.items() if k != "taxonomy_id"}
    assert problems(sent("POST", LISTINGS, data=missing)) == ["body.taxonomy_id: required"]
    assert problems(sent("POST", LISTINGS, data={**DRAFT, "when_made": "2020_2023"})) == [
        "body.when_made: '2020_2023' is not one of 'made_to_order', '2020_2026', '2010_2019', "
        "'2007_2009', 'before_2007', '2000_2006', '1990s', '1980s', '1970s', '1960s', '1950s', "
        "'1940s', '1930s', '1920s', '1910s', '1900s', '1800s', '1700s', 'before_1700'"
    ]
    # The processing profile was called readiness_state_id; a misspelling is refused.
    typo = {**missing, "taxonomy_id": "482", "readiness_state": str(MADE_TO_ORDER)}
    assert problems(sent("POST", LISTINGS, data=typo)) == [
        "body.readiness_state: not a field of this request"
    ]
    # A listing's quantity is its inventory's: updateListing has no such field.
    update = f"{LISTINGS}/77"
    assert problems(sent("PATCH", update, data={"quantity": "5"})) == [
        "body.quantity: not a field of this request"
    ]
    assert problems(sent("PATCH", update, data={"state": "draft"})) == [
        "body.state: 'draft' is not one of 'active', 'inactive'"
    ]
    assert problems(sent("GET", LISTINGS, params={"state": "removed", "limit": "101"})) == [
        "query.state: 'removed' is not one of 'active', 'inactive', 'sold_out', 'draft', 'expired'",
        "query.limit: 101 is above the maximum 100",
    ]
    # A refusal answered as Etsy answers a 400: its ErrorSchema, {"error": "..."}.
    refused = sent("POST", LISTINGS, data=missing)
    assert error_body(refused) == {"error": "body.taxonomy_id: required"}
    assert contract().check_response("createDraftListing", 400, error_body(refused)) == []
    # Etsy documents its lists as comma-separated: both forms are taken.
    assert sent("GET", "/v3/application/listings/77", params={"includes": "Images,Inventory"}).ok
    assert sent("GET", "/v3/application/listings/77?includes=Images&includes=Inventory").ok


def test_the_inventory_body_is_checked_to_the_offering() -> None:
    inventory = "/v3/application/listings/77/inventory"
    product = {"sku": "pod-1-S", "property_values": [], "offerings": [OFFERING]}
    assert sent("PUT", inventory, json={"products": [product]}).ok
    no_profile = {k: v for k, v in OFFERING.items() if k != "readiness_state_id"}
    assert problems(sent("PUT", inventory, json={"products": [{"offerings": [no_profile]}]})) == [
        "body.products[0].offerings[0].readiness_state_id: required"
    ]
    text_price = {**OFFERING, "price": "24.99"}
    assert problems(sent("PUT", inventory, json={"products": [{"offerings": [text_price]}]})) == [
        "body.products[0].offerings[0].price: expected a number, got '24.99'"
    ]
    value = {"property_id": 513, "value_ids": [], "values": ["Black"], "property": "Color"}
    bad = {"offerings": [OFFERING], "property_values": [value]}
    assert problems(sent("PUT", inventory, json={"products": [bad]})) == [
        "body.products[0].property_values[0].property: not a field of this object"
    ]
    # The same inventory as a form is refused.
    assert problems(sent("PUT", inventory, data={"products": "[]"}))[0].startswith(
        "content-type: updateListingInventory takes application/json"
    )


def test_images_go_as_multipart_files() -> None:
    images = f"{LISTINGS}/77/images"
    upload = sent(
        "POST",
        images,
        files={"image": ("a.png", png(8, 8), "image/png")},
        data={"rank": "1", "overwrite": "true"},
    )
    assert upload.ok, problems(upload)
    assert problems(sent("POST", images, data={"rank": "1"}))[0].startswith(
        "content-type: uploadListingImage takes multipart/form-data"
    )


def test_the_scopes_each_operation_needs_come_from_the_document() -> None:
    checker = contract()
    assert checker.required_scopes("createDraftListing") == [["listings_w"]]
    assert checker.required_scopes("getListingsByShop") == [["listings_r"]]
    assert checker.required_scopes("getShopReadinessStateDefinitions") == [["shops_r"]]
    assert checker.required_scopes("ping") == [[]]
    lacking = contract().check_request(
        "POST",
        LISTINGS,
        headers=CREDENTIALS,
        body=str(httpx.QueryParams(DRAFT)).encode(),
        content_type="application/x-www-form-urlencoded",
        scopes={"listings_r"},
    )
    assert lacking.first_kind() == "scope"
    no_key = sent("GET", "/v3/application/openapi-ping", headers={"x-api-key": ""})
    assert problems(no_key)[0].startswith("header.x-api-key: required")


CHANNEL_OPERATIONS = {
    "getListingsByShop",
    "getShopReadinessStateDefinitions",
    "createDraftListing",
    "updateListingInventory",
    "uploadListingImage",
    "updateListing",
    "getListing",
    "deleteListing",
}


def test_the_scopes_the_engine_asks_for_are_the_documents() -> None:
    """ENGINE_SCOPES (what pod doctor checks a token for) is what Etsy's document asks of the
    calls the channel makes, not a list written from memory."""
    needed: dict[str, set[str]] = {}
    for operation in CHANNEL_OPERATIONS:
        for alternative in contract().required_scopes(operation):
            for scope in alternative:
                needed.setdefault(scope, set()).add(operation)
    assert {s: set(ops) for s, ops in ENGINE_SCOPES.items()} == needed


# --- today's client, replayed through the contract ---------------------------------------------


class Contracted(httpx.AsyncBaseTransport):
    """A transport that checks every request against Etsy's contract before handing it to the
    simulator, and the simulator's answer after; it keeps what each request was and what was
    wrong with it and with its answer."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.seen: list[tuple[str, list[str]]] = []
        self.answers: list[tuple[str, list[str]]] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        body = await request.aread()
        checked = contract().check_request(
            request.method,
            request.url.path,
            query=request.url.params.multi_items(),
            headers=request.headers,
            body=body,
        )
        name = checked.operation.operation_id if checked.operation else request.url.path
        self.seen.append((f"{request.method} {name}", problems(checked)))
        response = await self.inner.handle_async_request(request)
        content = await response.aread()
        wrong = answer_problems(
            request.method,
            request.url.path,
            response.status_code,
            json.loads(content) if content else None,
        )
        self.answers.append((f"{response.status_code} {name}", [str(p) for p in wrong]))
        return httpx.Response(
            response.status_code, headers=response.headers, content=content, request=request
        )

    def refused(self) -> list[tuple[str, list[str]]]:
        return [(call, found) for call, found in self.seen if found]

    def wrong_answers(self) -> list[tuple[str, list[str]]]:
        """The simulator's answers Etsy's document does not allow."""
        return [(call, found) for call, found in self.answers if found]

    def operations(self) -> set[str]:
        return {call.split(" ", 1)[1] for call, _ in self.seen}


@pytest.fixture
def etsy_app(monkeypatch: pytest.MonkeyPatch) -> FastAPI:
    monkeypatch.setenv("SIM_ETSY_QPS", "50")
    return etsy_sim.create_app()


@pytest.fixture
async def source() -> AsyncIterator[Any]:
    client = in_process(printify_sim.create_app())
    yield client
    await client.aclose()


def settings(**over: Any) -> EtsySettings:
    values: dict[str, Any] = {
        "etsy_api_url": "http://etsy",
        "etsy_api_key": "ks-KEYSTRING",
        "etsy_shared_secret": "ss-SECRET",
        "etsy_access_token": "4242.tok-ACCESS",
        "etsy_shop_id": SHOP,
        "etsy_shipping_profile_id": 9001,
        "etsy_return_policy_id": 31,
        "etsy_max_images": 2,
    }
    return EtsySettings(**{**values, **over})


async def new_product(source: Any, variants: int) -> ProductRef:
    made = await create_product(
        source,
        str(printify_sim.SHOP_ID),
        variant_count=variants,
        price_cents=2499,
        sku_prefix=f"pod-{uuid.uuid4().hex[:16]}",
    )
    return ProductRef(str(printify_sim.SHOP_ID), str(made.id), "Moon Cat")


async def mockup(url: str) -> bytes:
    return png(48, 40)


async def test_every_request_the_etsy_channel_sends_conforms_to_etsys_document(
    etsy_app: FastAPI, source: Any
) -> None:
    checked = Contracted(httpx.ASGITransport(app=etsy_app))

    def channel(**over: Any) -> Any:
        return etsy_channel(settings(**over), source, fetch_image=mockup, transport=checked)

    # A new listing: the shop's scan, the processing profiles, the draft, its inventory (three
    # variants), its images, its activation.
    ref = await new_product(source, 3)
    first = await channel(etsy_readiness_state_id="").publish(ref)
    assert first.listing is not None
    # A redelivery to another process (found by scanning), then to the same one (getListing).
    again = channel()
    assert await again.publish(ref) == first
    assert await again.publish(ref) == first
    assert (await again.check(ref)).listing == first.listing
    # A draft left half made is finished: getListing with its images and inventory.
    half = await new_product(source, 2)
    async with etsy_client(settings(), transport=checked) as etsy:
        await etsy.create_draft_listing(
            SHOP,
            {
                "quantity": 999, "title": "Moon Cat", "description": "d", "price": "24.99",
                "who_made": "i_did", "when_made": "made_to_order", "taxonomy_id": 482,
                "shipping_profile_id": 9001, "readiness_state_id": MADE_TO_ORDER,
                "tags": [marker_tag(half.product_id)],
            },
        )  # fmt: skip
    finisher = channel(etsy_readiness_state_id=MADE_TO_ORDER)
    assert await finisher.check(half) == PENDING
    finished = await finisher.reconcile(half)
    assert finished is not None and finished.listing is not None
    # A seller's decisions: priced again, unpublished (deactivated), published again, deleted.
    assert await again.reprice(ref) is True
    assert await again.withdraw(ref, delete=False) is True
    assert (await again.publish(ref)).listing == first.listing
    assert await again.withdraw(ref, delete=True) is True

    assert checked.refused() == [], "requests Etsy's document refuses"
    assert checked.wrong_answers() == [], "answers Etsy's document does not allow"
    assert checked.operations() == CHANNEL_OPERATIONS
    assert checked.operations() <= set(OPERATIONS)


async def test_every_call_of_the_etsy_client_conforms_to_etsys_document(
    etsy_app: FastAPI,
) -> None:
    """The client's calls with the arguments the channel does not use (includes, a first image
    without overwrite, an alt text)."""
    checked = Contracted(httpx.ASGITransport(app=etsy_app))
    etsy = EtsyClient(
        api_key="ks-KEYSTRING",
        shared_secret="ss-SECRET",
        access_token="4242.tok-ACCESS",
        base_url="http://etsy",
        transport=checked,
    )
    async with etsy:
        created = await etsy.create_draft_listing(
            SHOP,
            {
                "quantity": 1, "title": "Moon Cat, 100% cotton", "description": "d",
                "price": "24.99", "who_made": "i_did", "when_made": "made_to_order",
                "taxonomy_id": 482, "shipping_profile_id": 9001,
                "readiness_state_id": MADE_TO_ORDER, "return_policy_id": None,
                "is_supply": False, "type": "physical", "tags": ["pod-abc", "moon cat"],
            },
        )  # fmt: skip
        listing_id = created.listing_id
        await etsy.upload_listing_image(SHOP, listing_id, png(8, 8), rank=1, alt_text="a cat")
        await etsy.get_listings_by_shop(SHOP, state="draft", includes=("Images", "Inventory"))
        await etsy.get_listing(listing_id, includes=("Images",))
        await etsy.get_readiness_state_definitions(SHOP)
        # What pod doctor reads (shared/tools/doctor/etsy.py).
        assert await etsy.ping() > 0
        assert (await etsy.get_me()).user_id == 4242
        assert (await etsy.get_shop(SHOP)).shop_id == SHOP
        assert [p.shipping_profile_id for p in await etsy.get_shipping_profiles(SHOP)] == [9001]
        assert (await etsy.get_shipping_profile(SHOP, 9001)).shipping_profile_id == 9001
        assert len(await etsy.get_processing_profiles(SHOP)) == 2
        assert len(await etsy.get_return_policies(SHOP)) == 1
        assert any(n.id == 482 for t in await etsy.get_seller_taxonomy() for n in t.walk())
        assert await etsy.token_scopes() == ["listings_d", "listings_r", "listings_w", "shops_r"]
    assert checked.refused() == [], "requests Etsy's document refuses"
    assert checked.wrong_answers() == [], "answers Etsy's document does not allow"
    assert len(checked.seen) == 14
    assert {call.split(" ", 1)[1] for call, _ in checked.seen} >= {
        "ping",
        "getMe",
        "getShop",
        "getShopShippingProfiles",
        "getShopShippingProfile",
        "getShopReturnPolicies",
        "getSellerTaxonomyNodes",
        "tokenScopes",
    }
