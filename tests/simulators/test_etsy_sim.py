"""The Etsy simulator over real HTTP: credentials, Etsy's validation and error body, the
draft -> inventory -> image -> active flow, pagination, rate-limit headers and 429s, books."""

from __future__ import annotations

import io
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from PIL import Image

from simulators.contracts.etsy import answer_problems
from simulators.etsy import app_key
from simulators.process import SimulatorProcess
from tests.support.infra import free_port, wait_for

TOKEN = "5151.sim-token"


def png_bytes(width: int = 40, height: int = 30) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (width, height), (10, 120, 200)).save(buf, "PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def sim() -> Iterator[SimulatorProcess]:
    # A roomy per-second budget: these tests send bursts; the limits have their own sim below.
    proc = SimulatorProcess("etsy", free_port(), env={"SIM_ETSY_QPS": "1000"}).start()
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def limited_sim() -> Iterator[SimulatorProcess]:
    proc = SimulatorProcess("etsy", free_port(), env={"SIM_ETSY_QPS": "2"}).start()
    yield proc
    proc.stop()


def held_to_etsys_document(response: httpx.Response) -> None:
    """Every answer the simulator gives is one Etsy's document allows (an event hook)."""
    response.read()
    if response.request.url.path.startswith("/_sim"):
        return
    body = response.json() if response.content else None
    found = answer_problems(
        response.request.method, response.request.url.path, response.status_code, body
    )
    assert found == [], (response.request.method, response.request.url.path, found)


def client_for(proc: SimulatorProcess, keystring: str | None = None) -> httpx.Client:
    """An app of its own (rate limits are per app) acting for one shop owner; each answer is
    checked against Etsy's document."""
    keystring = keystring or f"app-{uuid.uuid4().hex[:12]}"
    return httpx.Client(
        base_url=proc.url,
        headers={"x-api-key": f"{keystring}:shh", "Authorization": f"Bearer {TOKEN}"},
        timeout=10.0,
        trust_env=False,
        event_hooks={"response": [held_to_etsys_document]},
    )


def new_shop() -> int:
    return int(uuid.uuid4().int % 10**8) + 1


def books_of(proc: SimulatorProcess) -> dict[str, Any]:
    return dict(httpx.get(f"{proc.url}/_sim/books", trust_env=False).json())


def shop_books(proc: SimulatorProcess, shop: int) -> dict[str, Any]:
    return dict(books_of(proc)["shops"].get(str(shop), {"listings": [], "created": 0}))


def profile_of(shop: int, readiness: str = "made_to_order") -> int:
    """The shop's processing profile's id, as the simulator numbers them."""
    return shop * 10 + (1 if readiness == "made_to_order" else 2)


def draft_fields(shop: int, **over: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "quantity": "999",
        "title": "Retro Sunset Tee: soft & warm",
        "description": "A sunset, printed on demand.",
        "price": "24.99",
        "who_made": "i_did",
        "when_made": "made_to_order",
        "taxonomy_id": "482",
        "shipping_profile_id": "9001",
        "readiness_state_id": str(profile_of(shop)),
        "tags": "retro,sunset,pod-abc",
    }
    fields.update(over)
    return {k: v for k, v in fields.items() if v is not None}


def create(http: httpx.Client, shop: int, **over: Any) -> dict[str, Any]:
    resp = http.post(f"/v3/application/shops/{shop}/listings", data=draft_fields(shop, **over))
    assert resp.status_code == 201, resp.text
    return dict(resp.json())


# Any positive id: the simulator checks an offering's processing profile is one, not whose.
READINESS = 1


def inventory(*rows: tuple[str, str, str, float], **over: Any) -> dict[str, Any]:
    """An updateListingInventory body: (sku, colour, size, price) per product, with what Etsy's
    document requires of each (value_ids, an offering's readiness_state_id)."""
    body: dict[str, Any] = {
        "products": [
            {
                "sku": sku,
                "property_values": [
                    {
                        "property_id": 513,
                        "property_name": "Colors",
                        "value_ids": [],
                        "values": [colour],
                    },
                    {
                        "property_id": 514,
                        "property_name": "Sizes",
                        "value_ids": [],
                        "values": [size],
                    },
                ],
                "offerings": [
                    {
                        "price": price,
                        "quantity": 999,
                        "is_enabled": True,
                        "readiness_state_id": READINESS,
                    }
                ],
            }
            for sku, colour, size, price in rows
        ],
        "price_on_property": [514],
        "quantity_on_property": [],
        "sku_on_property": [513, 514],
    }
    body.update(over)
    return body


ROWS = (("s-w-s", "White", "S", 19.99), ("s-w-xl", "White", "XL", 24.99))


def assert_etsy_error(resp: httpx.Response, status: int, part: str = "") -> None:
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert set(body) == {"error"} and isinstance(body["error"], str) and body["error"]
    assert part.lower() in body["error"].lower(), body["error"]


# --- credentials --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("api_key", "part"),
    [(None, "keystring:shared_secret"), ("only-the-keystring", "shared secret"), (":x", "format")],
)
def test_an_api_key_with_its_shared_secret_is_required(
    sim: SimulatorProcess, api_key: str | None, part: str
) -> None:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    if api_key is not None:
        headers["x-api-key"] = api_key
    resp = httpx.get(f"{sim.url}/v3/application/shops/1/listings", headers=headers, trust_env=False)
    assert_etsy_error(resp, 403, part)
    assert "x-limit-per-second" not in resp.headers  # no app, no budget


def test_listing_calls_need_an_oauth_token(sim: SimulatorProcess) -> None:
    with client_for(sim) as http:
        for auth in ("", "Bearer", "Basic abc"):
            resp = http.get("/v3/application/shops/1/listings", headers={"Authorization": auth})
            assert_etsy_error(resp, 401, "token")
            assert resp.headers["x-limit-per-second"] == "1000"
        # The API key alone is enough to ping.
        ping = http.get("/v3/application/openapi-ping", headers={"Authorization": ""})
        assert ping.status_code == 200 and "application_id" in ping.json()


def test_only_the_configured_api_keys_are_accepted() -> None:
    env = {"SIM_ETSY_API_KEYS": "known:secret"}
    with SimulatorProcess("etsy", free_port(), env=env) as proc:
        with client_for(proc, "known") as http:
            assert_etsy_error(http.get("/v3/application/shops/1/listings"), 403, "invalid")
        known = httpx.get(
            f"{proc.url}/v3/application/shops/1/listings",
            headers={"x-api-key": "known:secret", "Authorization": f"Bearer {TOKEN}"},
            trust_env=False,
        )
        assert known.status_code == 200, known.text


# --- createDraftListing --------------------------------------------------------------------------


def test_create_draft_listing(sim: SimulatorProcess) -> None:
    shop = new_shop()
    with client_for(sim) as http:
        listing = create(http, shop)
        assert listing["state"] == "draft" and listing["shop_id"] == shop
        assert listing["user_id"] == 5151  # the token's owner
        assert listing["tags"] == ["retro", "sunset", "pod-abc"]
        assert listing["price"] == {"amount": 2499, "divisor": 100, "currency_code": "USD"}
        assert listing["quantity"] == 999 and listing["listing_type"] == "physical"
        assert listing["url"] == f"https://www.etsy.com/listing/{listing['listing_id']}"
        # Etsy makes the inventory record at once: one product at the listing's price.
        inv = http.get(f"/v3/application/listings/{listing['listing_id']}/inventory").json()
        assert [p["offerings"][0]["price"]["amount"] for p in inv["products"]] == [2499]
        # Lists may also come as repeated fields (OpenAPI's form encoding; PHP's `tags[]` is
        # not a field of Etsy's document); a digital listing needs no shipping profile.
        form = (
            "quantity=1&title=Files&description=d&price=3&who_made=i_did"
            "&when_made=made_to_order&taxonomy_id=1&type=download&tags=a&tags=b"
        )
        resp = http.post(
            f"/v3/application/shops/{shop}/listings",
            content=form,
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert resp.status_code == 201, resp.text
        assert resp.json()["tags"] == ["a", "b"] and resp.json()["shipping_profile_id"] is None
        php = http.post(
            f"/v3/application/shops/{shop}/listings",
            content=form.replace("tags=", "tags[]="),
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert_etsy_error(php, 400, "body.tags[]: not a field of this request")
    assert shop_books(sim, shop)["created"] == 2


def test_processing_profiles_are_listed_per_shop(sim: SimulatorProcess) -> None:
    shop = new_shop()
    with client_for(sim) as http:
        resp = http.get(f"/v3/application/shops/{shop}/readiness-state-definitions")
        assert resp.status_code == 200, resp.text
        page = resp.json()
        assert page["count"] == 2
        by_state = {p["readiness_state"]: p for p in page["results"]}
        assert by_state["made_to_order"]["readiness_state_id"] == profile_of(shop)
        assert by_state["made_to_order"]["shop_id"] == shop
        assert by_state["ready_to_ship"]["min_processing_days"] == 1
        one = http.get(
            f"/v3/application/shops/{shop}/readiness-state-definitions",
            params={"limit": 1, "offset": 1},
        ).json()
        assert one["count"] == 2 and len(one["results"]) == 1
        # A listing made to order names the made-to-order profile; another shop's is refused.
        listing = create(http, shop, readiness_state_id=str(profile_of(shop, "ready_to_ship")))
        assert listing["listing_id"]
        other = http.post(
            f"/v3/application/shops/{shop}/listings",
            data=draft_fields(shop, readiness_state_id=str(profile_of(shop + 1))),
        )
        assert_etsy_error(other, 400, "not a processing profile")


@pytest.mark.parametrize(
    ("over", "part"),
    [
        *[({name: None}, name) for name in ("quantity", "title", "description", "price")],
        *[({name: None}, name) for name in ("who_made", "when_made", "taxonomy_id")],
        ({"shipping_profile_id": None}, "shipping_profile_id"),
        ({"readiness_state_id": None}, "A readiness_state_id is required for physical listings"),
        ({"readiness_state_id": "12345"}, "not a processing profile of shop"),
        ({"who_made": "robot"}, "who_made"),
        ({"when_made": "2031"}, "when_made"),
        ({"type": "service"}, "type"),
        ({"item_weight_unit": "stone"}, "item_weight_unit"),
        ({"price": "0"}, "price"),
        ({"price": "0.1"}, "price"),
        ({"price": "abc"}, "price"),
        ({"price": "50000.01"}, "price"),
        ({"quantity": "0"}, "quantity"),
        ({"quantity": "1000"}, "quantity"),
        ({"taxonomy_id": "-3"}, "taxonomy_id"),
        ({"title": "Cats & Dogs & Birds"}, "'&'"),
        ({"title": "Ratio: 1:2"}, "':'"),
        ({"title": "x" * 141}, "140"),
        ({"title": "Price $20"}, "'$'"),
        ({"title": "   "}, "title"),
        ({"description": " "}, "description"),
        ({"tags": ",".join(f"t{i}" for i in range(14))}, "13 tags"),
        ({"tags": "a tag of twenty-one c"}, "20 characters"),
        ({"tags": "wow!"}, "'!'"),
        ({"materials": "cotton!"}, "material"),
        ({"item_weight": "0"}, "item_weight"),
        ({"is_supply": "maybe"}, "is_supply"),
    ],
)
def test_create_draft_listing_validation(
    sim: SimulatorProcess, over: dict[str, Any], part: str
) -> None:
    shop = new_shop()
    with client_for(sim) as http:
        resp = http.post(f"/v3/application/shops/{shop}/listings", data=draft_fields(shop, **over))
        assert_etsy_error(resp, 400, part)
        # Etsy's listing fields are form-encoded; JSON is refused.
        as_json = http.post(f"/v3/application/shops/{shop}/listings", json=draft_fields(shop))
        assert_etsy_error(as_json, 400, "x-www-form-urlencoded")
    assert shop_books(sim, shop)["created"] == 0


# --- the listing's life ---------------------------------------------------------------------------


def bad_inventory_bodies() -> list[tuple[dict[str, Any], str]]:
    """Inventories Etsy refuses, each with a word its error names."""
    bad_bodies = [
        (inventory(*ROWS, price_on_property=[]), "price"),
        (inventory(*ROWS, sku_on_property=[513]), "sku"),
        (inventory(*ROWS, price_on_property=[999]), "999"),
        (inventory(ROWS[0], ROWS[0]), "repeats"),
        (inventory(("x" * 33, "White", "S", 19.99)), "32"),
        (inventory(("a", "White (matte)", "S", 19.99)), "parenthesis"),
        (inventory(("a", "White", "S", 0.1)), "price"),
        ({"products": []}, "products"),
    ]
    two_offerings = inventory(ROWS[0])
    two_offerings["products"][0]["offerings"] *= 2
    bad_bodies.append((two_offerings, "exactly one offering"))
    nameless = inventory(ROWS[0])
    del nameless["products"][0]["property_values"][0]["property_name"]
    bad_bodies.append((nameless, "property_name"))
    three = inventory(ROWS[0])
    three["products"][0]["property_values"].append(
        {"property_id": 200, "property_name": "Fit", "value_ids": [], "values": ["Slim"]}
    )
    bad_bodies.append((three, "at most 2"))
    mixed = inventory(*ROWS)
    mixed["products"][1]["property_values"].pop()
    bad_bodies.append((mixed, "same properties"))
    disabled = inventory(ROWS[0])
    disabled["products"][0]["offerings"][0]["is_enabled"] = False
    bad_bodies.append((disabled, "enabled"))
    return bad_bodies


def upload_images(http: httpx.Client, images_url: str, lid: int) -> None:
    """Two images at ranks 1 and 2, after the refused uploads, as the listing needs."""
    # Images: only real images, in multipart.
    not_image = http.post(images_url, files={"image": ("x.png", b"nope", "image/png")})
    assert_etsy_error(not_image, 400, "image")
    no_file = http.post(images_url, files={"rank": (None, "1")})
    assert_etsy_error(no_file, 400, "image")
    first = http.post(
        images_url,
        files={"image": ("a.png", png_bytes(64, 48), "image/png")},
        data={"rank": "1"},
    )
    assert first.status_code == 201, first.text
    assert (first.json()["full_width"], first.json()["full_height"]) == (64, 48)
    assert first.json()["rank"] == 1 and first.json()["hex_code"] == "0A78C8"
    # A second at rank 1 goes first; with overwrite it replaces.
    second = http.post(
        images_url,
        files={"image": ("b.png", png_bytes(50, 50), "image/png")},
        data={"rank": "1"},
    )
    replaced = http.post(
        images_url,
        files={"image": ("c.png", png_bytes(30, 20), "image/png")},
        data={"rank": "2", "overwrite": "true"},
    )
    assert second.status_code == replaced.status_code == 201
    # getListingImages is a listing's, not a shop's (the shop's path takes POST only).
    assert_etsy_error(http.get(images_url), 405, "takes POST")
    ranks = http.get(f"/v3/application/listings/{lid}/images").json()
    assert ranks["count"] == 2
    assert [(i["rank"], i["full_width"]) for i in ranks["results"]] == [(1, 50), (2, 30)]


def test_draft_inventory_images_then_active(sim: SimulatorProcess) -> None:
    shop = new_shop()
    with client_for(sim) as http:
        lid = create(http, shop)["listing_id"]
        listing_url = f"/v3/application/shops/{shop}/listings/{lid}"
        inventory_url = f"/v3/application/listings/{lid}/inventory"
        images_url = f"{listing_url}/images"

        # No image yet: Etsy will not publish it.
        assert_etsy_error(http.patch(listing_url, data={"state": "active"}), 400, "image")

        bad_bodies = bad_inventory_bodies()
        for body, part in bad_bodies:
            assert_etsy_error(http.put(inventory_url, json=body), 400, part)

        stored = http.put(inventory_url, json=inventory(*ROWS))
        assert stored.status_code == 200, stored.text
        products = stored.json()["products"]
        assert [p["sku"] for p in products] == ["s-w-s", "s-w-xl"]
        assert [p["offerings"][0]["price"]["amount"] for p in products] == [1999, 2499]
        assert all(p["product_id"] and p["offerings"][0]["offering_id"] for p in products)
        assert all(pv["value_ids"] for p in products for pv in p["property_values"])

        upload_images(http, images_url, lid)

        active = http.patch(listing_url, data={"state": "active"})
        assert active.status_code == 200, active.text
        body = active.json()
        assert body["state"] == "active" and body["ending_timestamp"] > time.time() + 86400 * 100
        assert body["price"]["amount"] == 1999 and body["quantity"] == 1998
        assert body["has_variations"] is True

        full = http.get(f"/v3/application/listings/{lid}", params={"includes": "Images,Inventory"})
        assert len(full.json()["images"]) == 2 and len(full.json()["inventory"]["products"]) == 2
        assert "images" not in http.get(f"/v3/application/listings/{lid}").json()
        assert_etsy_error(
            http.get(f"/v3/application/listings/{lid}", params={"includes": "Everything"}),
            400,
            "includes",
        )

        # Deactivated by the seller; a draft cannot be.
        inactive = http.patch(listing_url, data={"state": "inactive"})
        assert inactive.status_code == 200 and inactive.json()["state"] == "inactive"
        other = create(http, shop)["listing_id"]
        assert_etsy_error(
            http.patch(
                f"/v3/application/shops/{shop}/listings/{other}", data={"state": "inactive"}
            ),
            400,
            "draft",
        )
        assert_etsy_error(http.patch(listing_url, data={"state": "sold"}), 400, "state")
        # Another shop's listing, or none.
        assert_etsy_error(
            http.patch(f"/v3/application/shops/{shop + 1}/listings/{lid}", data={}), 404
        )
        assert_etsy_error(http.get("/v3/application/listings/1"), 404)
        assert_etsy_error(http.get("/v3/application/listings/abc"), 400, "listing_id")

    booked = shop_books(sim, shop)
    assert booked["created"] == 2 and booked["activated"] == 1
    [mine] = [lst for lst in booked["listings"] if lst["listing_id"] == lid]
    assert mine["state"] == "inactive" and mine["images"] == 2 and mine["products"] == 2
    assert mine["skus"] == ["s-w-s", "s-w-xl"] and "pod-abc" in mine["tags"]


def test_activation_needs_stock_and_a_shipping_profile(sim: SimulatorProcess) -> None:
    shop = new_shop()
    with client_for(sim) as http:
        lid = create(http, shop)["listing_id"]
        url = f"/v3/application/shops/{shop}/listings/{lid}"
        http.post(f"{url}/images", files={"image": ("a.png", png_bytes(), "image/png")})
        none_left = inventory(ROWS[0])
        none_left["products"][0]["offerings"][0]["quantity"] = 0
        assert http.put(f"/v3/application/listings/{lid}/inventory", json=none_left).is_success
        assert_etsy_error(http.patch(url, data={"state": "active"}), 400, "stock")
        assert http.put(
            f"/v3/application/listings/{lid}/inventory", json=inventory(ROWS[0])
        ).is_success
        assert http.patch(url, data={"state": "active"}).json()["state"] == "active"


def test_getting_listings_by_shop_pages_newest_first(sim: SimulatorProcess) -> None:
    shop = new_shop()
    with client_for(sim) as http:
        ids = [create(http, shop, title=f"Tee number {i}")["listing_id"] for i in range(7)]
        url = f"/v3/application/shops/{shop}/listings"
        pages = [
            http.get(url, params={"state": "draft", "limit": 3, "offset": o}).json()
            for o in (0, 3, 6)
        ]
        assert [p["count"] for p in pages] == [7, 7, 7]
        assert [len(p["results"]) for p in pages] == [3, 3, 1]
        assert [lst["listing_id"] for p in pages for lst in p["results"]] == ids[::-1]
        # Active by default, 25 a page by default.
        assert http.get(url).json() == {"count": 0, "results": []}
        assert len(http.get(url, params={"state": "draft"}).json()["results"]) == 7
        past = http.get(url, params={"state": "draft", "offset": 7}).json()
        assert past == {"count": 7, "results": []}
        for params, part in (
            ({"limit": 101}, "limit"),
            ({"limit": 0}, "limit"),
            ({"offset": -1}, "offset"),
            ({"state": "removed"}, "state"),
        ):
            assert_etsy_error(http.get(url, params=params), 400, part)


def test_deleted_and_expired_listings(sim: SimulatorProcess) -> None:
    shop = new_shop()
    with client_for(sim) as http:
        gone, old = create(http, shop)["listing_id"], create(http, shop)["listing_id"]
        assert http.delete(f"/v3/application/listings/{gone}").status_code == 204
        assert_etsy_error(http.get(f"/v3/application/listings/{gone}"), 404)
        hook = httpx.post(
            f"{sim.url}/_sim/listings/{old}", json={"state": "expired"}, trust_env=False
        )
        assert hook.status_code == 200
        expired = http.get(f"/v3/application/shops/{shop}/listings", params={"state": "expired"})
        assert [lst["listing_id"] for lst in expired.json()["results"]] == [old]
    booked = shop_books(sim, shop)
    assert booked["deleted"] == 1 and [lst["listing_id"] for lst in booked["listings"]] == [old]


def test_the_books_show_duplicate_markers(sim: SimulatorProcess) -> None:
    shop = new_shop()
    marker = f"pod-{uuid.uuid4().hex[:15]}"
    with client_for(sim) as http:
        one = create(http, shop, tags=f"cat,{marker}")["listing_id"]
        create(http, shop, tags="cat")  # an unrelated listing
        assert not [d for d in books_of(sim)["duplicates"] if d["shop_id"] == shop]
        two = create(http, shop, tags=marker)["listing_id"]
    dupes = [d for d in books_of(sim)["duplicates"] if d["shop_id"] == shop]
    assert dupes == [{"shop_id": shop, "marker": f"tag:{marker}", "listing_ids": [one, two]}]


def test_unknown_routes_answer_in_etsy_format(sim: SimulatorProcess) -> None:
    with client_for(sim) as http:
        assert_etsy_error(http.get("/v3/application/nothing-here"), 404)
        assert_etsy_error(http.post("/v3/application/listings/1"), 405)


# --- rate limits ----------------------------------------------------------------------------------


def test_rate_limit_headers_and_429_beyond_the_second(limited_sim: SimulatorProcess) -> None:
    keystring = f"app-{uuid.uuid4().hex[:12]}"
    url = "/v3/application/shops/1/listings"
    with client_for(limited_sim, keystring) as http:
        answers = [http.get(url) for _ in range(3)]
        ok = [a for a in answers if a.status_code == 200]
        limited = [a for a in answers if a.status_code == 429]
        assert len(ok) == 2 and len(limited) == 1, [a.status_code for a in answers]
        for a in answers:
            assert a.headers["x-limit-per-second"] == "2"
            assert a.headers["x-limit-per-day"] == "10000"
        assert [a.headers["x-remaining-this-second"] for a in ok] == ["1", "0"]
        assert [a.headers["x-remaining-today"] for a in ok] == ["9999", "9998"]
        assert_etsy_error(limited[0], 429, "per-second")
        assert limited[0].headers["Retry-After"] == "1"
        # A second later the budget is back.
        wait_for(lambda: http.get(url).status_code == 200, 5.0, "a fresh second", interval=0.25)
    app = books_of(limited_sim)["apps"][app_key(keystring)]
    assert app["rate_limited"] >= 1 and app["rate_limited_day"] == 0
    # Each app has its own budget.
    with client_for(limited_sim) as other:
        assert other.get(url).status_code == 200


def test_the_day_budget(sim: SimulatorProcess) -> None:
    keystring = f"app-{uuid.uuid4().hex[:12]}"
    before = httpx.get(f"{sim.url}/_sim/limits", trust_env=False).json()
    httpx.post(f"{sim.url}/_sim/limits", json={"qpd": 3}, trust_env=False).raise_for_status()
    try:
        with client_for(sim, keystring) as http:
            answers = [http.get("/v3/application/shops/1/listings") for _ in range(4)]
        assert [a.status_code for a in answers] == [200, 200, 200, 429]
        assert [a.headers["x-remaining-today"] for a in answers] == ["2", "1", "0", "0"]
        assert_etsy_error(answers[3], 429, "per-day")
        assert 86000 < int(answers[3].headers["Retry-After"]) <= 86400
        assert books_of(sim)["apps"][app_key(keystring)]["rate_limited_day"] == 1
    finally:
        httpx.post(f"{sim.url}/_sim/limits", json=before, trust_env=False).raise_for_status()


# --- faults and hooks -----------------------------------------------------------------------------


def test_injected_faults_use_etsy_errors(sim: SimulatorProcess) -> None:
    config = f"{sim.url}/_sim/config"
    before = httpx.get(config, trust_env=False).json()
    httpx.post(config, json={"failure_rate": 1.0, "fault_statuses": [503]}, trust_env=False)
    try:
        with client_for(sim) as http:
            resp = http.get("/v3/application/shops/1/listings")
        assert_etsy_error(resp, 503)
        assert resp.headers["x-limit-per-second"] == "1000"  # still counted against the app
    finally:
        httpx.post(config, json=before, trust_env=False).raise_for_status()
    faults = httpx.get(f"{sim.url}/_sim/faults", trust_env=False).json()
    assert faults.get("503", 0) >= 1


def test_reset_forgets_everything() -> None:
    with SimulatorProcess("etsy", free_port()) as proc, client_for(proc) as http:
        create(http, new_shop())
        assert books_of(proc)["created"] == 1
        # Etsy's default limits for an app.
        assert books_of(proc)["limits"] == {"qps": 10, "qpd": 10000, "day_s": 86400.0}
        assert httpx.post(f"{proc.url}/_sim/reset", trust_env=False).json() == {"reset": True}
        after = books_of(proc)
        assert after["created"] == 0 and after["shops"] == {} and after["apps"] == {}
