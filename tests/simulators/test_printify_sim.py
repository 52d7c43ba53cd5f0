"""The Printify simulator over real HTTP: wire format, validation, pagination, publishing,
auth, rate limits and the chaos books."""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.server
import io
import json
import os
import re
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from PIL import Image

from simulators.process import SimulatorProcess
from tests.support.infra import free_port, wait_for

SHOP = 12345678
HEX24 = re.compile(r"^[0-9a-f]{24}$")
PAGE_KEYS = {
    "current_page",
    "data",
    "first_page_url",
    "from",
    "last_page",
    "last_page_url",
    "next_page_url",
    "path",
    "per_page",
    "prev_page_url",
    "to",
    "total",
}


def png_bytes(width: int = 40, height: int = 30) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (width, height), (200, 30, 30)).save(buf, "PNG")
    return buf.getvalue()


def account_key(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()[:12]


@pytest.fixture(scope="module")
def sim() -> Iterator[SimulatorProcess]:
    proc = SimulatorProcess("printify", free_port()).start()
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def limited_sim() -> Iterator[SimulatorProcess]:
    env = {"SIM_PRINTIFY_RPM": "20", "SIM_PRINTIFY_PUBLISH_LIMIT": "2"}
    proc = SimulatorProcess("printify", free_port(), env=env).start()
    yield proc
    proc.stop()


def client_for(proc: SimulatorProcess, token: str | None = None) -> httpx.Client:
    token = token or f"tok-{uuid.uuid4().hex}"
    return httpx.Client(
        base_url=proc.url,
        headers={"Authorization": f"Bearer {token}"},
        timeout=10.0,
        trust_env=False,
    )


def books_of(proc: SimulatorProcess, http: httpx.Client) -> dict[str, Any]:
    token = http.headers["Authorization"].removeprefix("Bearer ")
    books = httpx.get(f"{proc.url}/_sim/books", trust_env=False).json()
    return dict(books["accounts"][account_key(token)])


def upload(http: httpx.Client, width: int = 40, height: int = 30) -> dict[str, Any]:
    contents = base64.b64encode(png_bytes(width, height)).decode()
    resp = http.post(
        "/v1/uploads/images.json", json={"file_name": "design.png", "contents": contents}
    )
    assert resp.status_code == 200, resp.text
    return dict(resp.json())


def product_body(image_id: str, sku_prefix: str | None = None, **over: Any) -> dict[str, Any]:
    prefix = sku_prefix or f"job-{uuid.uuid4().hex[:8]}"
    vids = [17390, 17391]
    body: dict[str, Any] = {
        "title": "Retro Sunset Tee",
        "description": "A sunset.",
        "tags": ["retro", f"pod:{prefix}"],
        "blueprint_id": 6,
        "print_provider_id": 99,
        "variants": [
            {"id": v, "price": 2499, "is_enabled": True, "sku": f"{prefix}-{v}"} for v in vids
        ],
        "print_areas": [
            {
                "variant_ids": vids,
                "placeholders": [
                    {
                        "position": "front",
                        "images": [{"id": image_id, "x": 0.5, "y": 0.5, "scale": 1, "angle": 0}],
                    }
                ],
            }
        ],
    }
    body.update(over)
    return body


def assert_printify_error(resp: httpx.Response, status: int, reason_part: str = "") -> None:
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert body["status"] == "error"
    assert isinstance(body["code"], int)
    assert isinstance(body["message"], str) and body["message"]
    if reason_part:
        assert set(body["errors"]) == {"reason", "code"}
        assert reason_part in body["errors"]["reason"]


# --- shops, auth -------------------------------------------------------------------------------


def test_shops_lists_one_stable_shop(sim: SimulatorProcess) -> None:
    with client_for(sim) as http:
        first = http.get("/v1/shops.json").json()
        second = http.get("/v1/shops.json").json()
    assert (
        first
        == second
        == [{"id": SHOP, "title": "POD Engine Shop", "sales_channel": "custom_integration"}]
    )


@pytest.mark.parametrize(
    "headers", [{}, {"Authorization": "Bearer"}, {"Authorization": "Basic abc"}]
)
def test_missing_or_empty_token_is_401(sim: SimulatorProcess, headers: dict[str, str]) -> None:
    resp = httpx.get(f"{sim.url}/v1/shops.json", headers=headers, trust_env=False)
    assert_printify_error(resp, 401)


# --- uploads -----------------------------------------------------------------------------------


def test_upload_base64_then_get_and_list(sim: SimulatorProcess) -> None:
    with client_for(sim) as http:
        up = upload(http, 64, 48)
        assert HEX24.match(up["id"])
        assert (up["width"], up["height"], up["mime_type"]) == (64, 48, "image/png")
        assert up["size"] == len(png_bytes(64, 48))
        assert {"file_name", "preview_url", "upload_time"} <= set(up)
        assert http.get(f"/v1/uploads/{up['id']}.json").json() == up
        page = http.get("/v1/uploads.json").json()
        assert set(page) == PAGE_KEYS
        assert [u["id"] for u in page["data"]] == [up["id"]]
        assert http.get("/v1/uploads/ffffffffffffffffffffffff.json").status_code == 404


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({"file_name": "a.png", "contents": base64.b64encode(b"not an image").decode()}, "image"),
        ({"file_name": "a.png", "contents": "%%% not base64"}, "base64"),
        ({"file_name": "a.png"}, "url or contents"),
        ({"contents": base64.b64encode(png_bytes()).decode()}, "file_name"),
    ],
)
def test_upload_rejections(sim: SimulatorProcess, body: dict[str, str], reason: str) -> None:
    with client_for(sim) as http:
        assert_printify_error(http.post("/v1/uploads/images.json", json=body), 400, reason)


@pytest.fixture
def image_server() -> Iterator[str]:
    """A tiny local HTTP server serving one PNG at /design.png."""
    data = png_bytes(120, 80)

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path != "/design.png":
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_upload_by_url(sim: SimulatorProcess, image_server: str) -> None:
    with client_for(sim) as http:
        resp = http.post(
            "/v1/uploads/images.json",
            json={"file_name": "design.png", "url": f"{image_server}/design.png"},
        )
        assert resp.status_code == 200, resp.text
        assert (resp.json()["width"], resp.json()["height"]) == (120, 80)
        missing = http.post(
            "/v1/uploads/images.json",
            json={"file_name": "x.png", "url": f"{image_server}/missing.png"},
        )
        assert_printify_error(missing, 400, "404")
        dead = http.post(
            "/v1/uploads/images.json",
            json={"file_name": "x.png", "url": f"http://127.0.0.1:{free_port()}/x.png"},
        )
        assert_printify_error(dead, 400, "download")


# --- catalog -----------------------------------------------------------------------------------


def test_catalog_shapes(sim: SimulatorProcess) -> None:
    with client_for(sim) as http:
        blueprints = {b["id"]: b for b in http.get("/v1/catalog/blueprints.json").json()}
        assert {6, 77, 68} <= set(blueprints)
        assert blueprints[6]["title"] == "Unisex Heavy Cotton Tee"
        assert (blueprints[77]["brand"], blueprints[77]["model"]) == ("Gildan", "18500")
        assert http.get("/v1/catalog/blueprints/6.json").json() == blueprints[6]
        for bp in (6, 77):
            providers = http.get(f"/v1/catalog/blueprints/{bp}/print_providers.json").json()
            assert {p["id"] for p in providers} == {99, 29}
        body = http.get("/v1/catalog/blueprints/6/print_providers/99/variants.json").json()
        assert (body["id"], body["title"]) == (99, "Printify Choice")
        variants = {v["id"]: v for v in body["variants"]}
        assert 17390 in variants
        v = variants[17390]
        assert set(v) == {"id", "title", "options", "placeholders"}
        assert set(v["options"]) == {"color", "size"}
        assert v["title"] == f"{v['options']['color']} / {v['options']['size']}"
        assert {p["position"] for p in v["placeholders"]} == {"front", "back"}
        assert all(p["width"] > 0 and p["height"] > 0 for p in v["placeholders"])
        assert {x["options"]["size"] for x in variants.values()} == {
            "S",
            "M",
            "L",
            "XL",
            "2XL",
            "3XL",
            "4XL",
            "5XL",
        }
        assert len({x["options"]["color"] for x in variants.values()}) >= 3
        assert http.get("/v1/catalog/blueprints/999999.json").status_code == 404
        missing = "/v1/catalog/blueprints/6/print_providers/12345/variants.json"
        assert http.get(missing).status_code == 404


# --- products ----------------------------------------------------------------------------------


def test_create_product_ok_then_get(sim: SimulatorProcess) -> None:
    with client_for(sim) as http:
        image = upload(http)
        resp = http.post(f"/v1/shops/{SHOP}/products.json", json=product_body(image["id"], "abc"))
        assert resp.status_code == 200, resp.text
        product = resp.json()
        assert HEX24.match(product["id"])
        assert product["tags"] == ["retro", "pod:abc"]
        enabled = [v for v in product["variants"] if v["is_enabled"]]
        assert [v["sku"] for v in enabled] == ["abc-17390", "abc-17391"]
        # The provider's whole matrix comes back; the variants not sent are disabled.
        catalog = http.get("/v1/catalog/blueprints/6/print_providers/99/variants.json").json()
        assert {v["id"] for v in product["variants"]} == {v["id"] for v in catalog["variants"]}
        assert len(product["variants"]) > len(enabled) == 2
        for v in product["variants"]:
            assert {"cost", "price", "title", "is_enabled", "is_default", "is_available"} <= set(v)
            assert v["price"] == 2499 and v["cost"] > 0
        mockups = product["images"]
        assert mockups and sum(m["is_default"] for m in mockups) == 1
        # Public images (no token), as on Printify's image servers.
        shot = httpx.get(mockups[0]["src"], timeout=5)
        assert shot.status_code == 200 and shot.headers["content-type"] == "image/jpeg"
        assert Image.open(io.BytesIO(shot.content)).format == "JPEG"
        assert product["print_areas"][0]["placeholders"][0]["images"][0]["id"] == image["id"]
        assert product["images"] and product["is_locked"] is False
        assert (product["blueprint_id"], product["print_provider_id"]) == (6, 99)
        assert product["shop_id"] == SHOP
        assert http.get(f"/v1/shops/{SHOP}/products/{product['id']}.json").json() == product
        # No SKU given → Printify generates one.
        body = product_body(image["id"])
        for v in body["variants"]:
            del v["sku"]
        generated = http.post(f"/v1/shops/{SHOP}/products.json", json=body).json()
        assert all(v["sku"] for v in generated["variants"])


def _without_print_areas(body: dict[str, Any]) -> None:
    del body["print_areas"]


def _float_price(body: dict[str, Any]) -> None:
    body["variants"][0]["price"] = 19.99


def _string_price(body: dict[str, Any]) -> None:
    body["variants"][0]["price"] = "19.99"


def _foreign_variant(body: dict[str, Any]) -> None:
    body["variants"][0]["id"] = 32878  # a hoodie variant on the tee blueprint


def _unknown_image(body: dict[str, Any]) -> None:
    body["print_areas"][0]["placeholders"][0]["images"][0]["id"] = "f" * 24


def _area_variant_not_in_variants(body: dict[str, Any]) -> None:
    body["print_areas"][0]["variant_ids"].append(17392)


def _empty_variants(body: dict[str, Any]) -> None:
    body["variants"] = []


def _missing_title(body: dict[str, Any]) -> None:
    del body["title"]


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (_without_print_areas, "print_areas"),
        (_float_price, "price"),
        (_string_price, "price"),
        (_foreign_variant, "32878"),
        (_unknown_image, "image"),
        (_area_variant_not_in_variants, "17392"),
        (_empty_variants, "variants"),
        (_missing_title, "title"),
    ],
)
def test_create_product_rejections(sim: SimulatorProcess, mutate: Any, reason: str) -> None:
    with client_for(sim) as http:
        body = product_body(upload(http)["id"])
        mutate(body)
        resp = http.post(f"/v1/shops/{SHOP}/products.json", json=body)
        assert_printify_error(resp, 400, reason)
        err = resp.json()
        assert err["message"] == "Validation failed."
        assert err["code"] == err["errors"]["code"] == 8150
        assert books_of(sim, http)["products_created"] == 0


def test_unknown_shop_is_404(sim: SimulatorProcess) -> None:
    with client_for(sim) as http:
        body = product_body(upload(http)["id"])
        assert_printify_error(http.post("/v1/shops/999/products.json", json=body), 404)
        assert_printify_error(http.get("/v1/shops/999/products.json"), 404)


def test_products_pagination_envelope_newest_first(sim: SimulatorProcess) -> None:
    with client_for(sim) as http:
        image = upload(http)["id"]
        ids = []
        for i in range(7):
            resp = http.post(f"/v1/shops/{SHOP}/products.json", json=product_body(image, f"p{i}"))
            ids.append(resp.json()["id"])
        pages = [
            http.get(f"/v1/shops/{SHOP}/products.json", params={"page": p, "limit": 3}).json()
            for p in (1, 2, 3)
        ]
        for n, page in enumerate(pages, start=1):
            assert set(page) == PAGE_KEYS
            assert (page["current_page"], page["per_page"], page["total"]) == (n, 3, 7)
            assert page["last_page"] == 3
        assert [p["id"] for page in pages for p in page["data"]] == ids[::-1]
        assert (pages[0]["from"], pages[0]["to"]) == (1, 3)
        assert pages[0]["prev_page_url"] is None and pages[0]["next_page_url"]
        assert pages[2]["next_page_url"] is None and len(pages[2]["data"]) == 1
        too_big = http.get(f"/v1/shops/{SHOP}/products.json", params={"limit": 51})
        assert_printify_error(too_big, 400, "50")


def test_delete_product(sim: SimulatorProcess) -> None:
    with client_for(sim) as http:
        pid = http.post(
            f"/v1/shops/{SHOP}/products.json", json=product_body(upload(http)["id"])
        ).json()["id"]
        assert http.delete(f"/v1/shops/{SHOP}/products/{pid}.json").json() == {}
        assert http.get(f"/v1/shops/{SHOP}/products/{pid}.json").status_code == 404
        # Gone: a second delete, an update, a publish all find no such product.
        assert_printify_error(http.delete(f"/v1/shops/{SHOP}/products/{pid}.json"), 404)
        gone = http.put(f"/v1/shops/{SHOP}/products/{pid}.json", json={"title": "x"})
        assert_printify_error(gone, 404)
        assert_printify_error(http.post(f"/v1/shops/{SHOP}/products/{pid}/unpublish.json"), 404)
        assert pid not in {p["product_id"] for p in books_of(sim, http)["products"]}


# --- publishing --------------------------------------------------------------------------------

PUBLISH = {
    "title": True,
    "description": True,
    "images": True,
    "variants": True,
    "tags": True,
    "keyFeatures": True,
    "shipping_template": True,
}


def test_publish_then_succeeded_and_failed(sim: SimulatorProcess) -> None:
    with client_for(sim) as http:
        image = upload(http)["id"]
        base = f"/v1/shops/{SHOP}/products"
        pid = http.post(f"{base}.json", json=product_body(image)).json()["id"]
        assert http.post(f"{base}/{pid}/publish.json", json=PUBLISH).json() == {}
        assert http.get(f"{base}/{pid}.json").json()["is_locked"] is True
        ok = http.post(
            f"{base}/{pid}/publishing_succeeded.json",
            json={"external": {"id": "gid://shop/1", "handle": "https://shop/p/1"}},
        )
        assert ok.status_code == 200 and ok.json() == {}
        product = http.get(f"{base}/{pid}.json").json()
        assert product["external"] == {"id": "gid://shop/1", "handle": "https://shop/p/1"}
        assert product["is_locked"] is False

        other = http.post(f"{base}.json", json=product_body(image)).json()["id"]
        http.post(f"{base}/{other}/publish.json", json=PUBLISH)
        failed = http.post(f"{base}/{other}/publishing_failed.json", json={"reason": "boom"})
        assert failed.status_code == 200
        assert http.get(f"{base}/{other}.json").json()["is_locked"] is False

        bad = http.post(f"{base}/{pid}/publish.json", json={**PUBLISH, "title": "yes"})
        assert_printify_error(bad, 400, "title")
        missing = http.post(f"{base}/{'0' * 24}/publish.json", json=PUBLISH)
        assert_printify_error(missing, 404)

        books = books_of(sim, http)
        assert books["publish_calls"] == {pid: 1, other: 1}
        assert books["publishing_succeeded"] == {pid: 1}
        assert books["publishing_failed"] == {other: 1}

        # The storefront takes it off sale again: Printify forgets the listing, keeps the
        # product (publishable again).
        assert http.post(f"{base}/{pid}/unpublish.json").json() == {}
        product = http.get(f"{base}/{pid}.json").json()
        assert "external" not in product and product["is_locked"] is False
        assert books_of(sim, http)["unpublished"] == {pid: 1}
        assert http.post(f"{base}/{pid}/publish.json", json=PUBLISH).json() == {}


# --- rate limits -------------------------------------------------------------------------------


def test_requests_over_rpm_get_429_with_retry_after(limited_sim: SimulatorProcess) -> None:
    with client_for(limited_sim) as http:
        statuses = [http.get("/v1/shops.json").status_code for _ in range(20)]
        assert statuses == [200] * 20
        resp = http.get("/v1/shops.json")
        assert_printify_error(resp, 429, "rate limit")
        assert 1 <= int(resp.headers["Retry-After"]) <= 60
        assert books_of(limited_sim, http)["rate_limited"] == 1
    # The limit is per account: another token is unaffected.
    with client_for(limited_sim) as other:
        assert other.get("/v1/shops.json").status_code == 200


def test_publish_limit_429(limited_sim: SimulatorProcess) -> None:
    with client_for(limited_sim) as http:
        base = f"/v1/shops/{SHOP}/products"
        pid = http.post(f"{base}.json", json=product_body(upload(http)["id"])).json()["id"]
        assert http.post(f"{base}/{pid}/publish.json", json=PUBLISH).status_code == 200
        assert http.post(f"{base}/{pid}/publish.json", json=PUBLISH).status_code == 200
        resp = http.post(f"{base}/{pid}/publish.json", json=PUBLISH)
        assert_printify_error(resp, 429, "Publishing")
        assert int(resp.headers["Retry-After"]) > 60  # the 30-minute window
        assert books_of(limited_sim, http)["publish_calls"] == {pid: 2}


# --- faults and books --------------------------------------------------------------------------


def test_injected_fault_is_printify_formatted(sim: SimulatorProcess) -> None:
    config = f"{sim.url}/_sim/config"
    httpx.post(config, json={"failure_rate": 1.0, "fault_statuses": [503]}, trust_env=False)
    try:
        with client_for(sim) as http:
            assert_printify_error(http.get("/v1/shops.json"), 503)
    finally:
        httpx.post(config, json={"failure_rate": 0.0}, trust_env=False)


def test_books_detect_duplicates(sim: SimulatorProcess) -> None:
    with client_for(sim) as http:
        image = upload(http)["id"]
        url = f"/v1/shops/{SHOP}/products.json"
        a = http.post(url, json=product_body(image, "same")).json()["id"]
        b = http.post(url, json=product_body(image, "same")).json()["id"]
        c_body = product_body(image, "c1")
        d_body = product_body(image, "d1")
        c_body["tags"] = d_body["tags"] = ["pod:job-42"]
        c = http.post(url, json=c_body).json()["id"]
        d = http.post(url, json=d_body).json()["id"]
        e = http.post(url, json=product_body(image, "unique")).json()["id"]

        books = books_of(sim, http)
        assert books["products_created"] == 5 and books["uploads"] == 1
        assert {p["product_id"] for p in books["products"]} == {a, b, c, d, e}
        dup_sets = {k["key"]: set(k["product_ids"]) for k in books["duplicates"]}
        assert dup_sets["sku:same-17390"] == {a, b}
        assert dup_sets["tag:pod:same"] == {a, b}
        assert dup_sets["tag:pod:job-42"] == {c, d}
        assert all(e not in ids for ids in dup_sets.values())
        everything = httpx.get(f"{sim.url}/_sim/books", trust_env=False).json()
        token = http.headers["Authorization"].removeprefix("Bearer ")
        assert any(d["account"] == account_key(token) for d in everything["duplicates"])


def test_reset_clears_state(limited_sim: SimulatorProcess) -> None:
    with client_for(limited_sim) as http:
        http.get("/v1/shops.json")
        assert books_of(limited_sim, http)["requests"] >= 1
        assert httpx.post(f"{limited_sim.url}/_sim/reset", trust_env=False).status_code == 200
        books = httpx.get(f"{limited_sim.url}/_sim/books", trust_env=False).json()
        assert books["accounts"] == {} and books["duplicates"] == []


def test_prices_are_updated_and_publishing_refuses_a_variant_below_cost(
    sim: SimulatorProcess,
) -> None:
    small, huge = 17390, 17397  # White / S and White / 5XL of the tee
    with client_for(sim) as http:
        image = upload(http)
        body = product_body(image["id"])
        body["variants"] = [{"id": v, "price": 1999, "is_enabled": True} for v in (small, huge)]
        body["print_areas"][0]["variant_ids"] = [small, huge]
        product = http.post(f"/v1/shops/{SHOP}/products.json", json=body).json()
        cost = {v["id"]: v["cost"] for v in product["variants"]}
        assert cost[small] < 1999 < cost[huge]  # a 5XL costs more than a flat tee price
        path = f"/v1/shops/{SHOP}/products/{product['id']}"
        parts = {k: True for k in ("title", "description", "images", "variants", "tags")}

        refused = http.post(f"{path}/publish.json", json=parts)
        assert_printify_error(refused, 400, "below its production cost")
        assert books_of(sim, http)["publish_below_cost"] == 1
        assert product["id"] not in books_of(sim, http)["publish_calls"]

        bad: dict[str, Any]
        for bad in (
            {"variants": [{"id": 99999, "price": 2999}]},  # not a variant of this product
            {"variants": [{"id": huge, "price": 29.99}]},
            {"variants": []},
            {"title": ""},
        ):
            assert_printify_error(http.put(f"{path}.json", json=bad), 400)
        # "When updating variants, all variants must be present in the request."
        partial = http.put(f"{path}.json", json={"variants": [{"id": huge, "price": 2999}]})
        assert_printify_error(partial, 400, "all variants of the product must be present")
        whole = [
            {"id": v["id"], "price": 2999 if v["id"] == huge else v["price"]}
            for v in product["variants"]
        ]
        updated = http.put(f"{path}.json", json={"variants": whole})
        assert updated.status_code == 200, updated.text
        assert {v["id"]: v["price"] for v in updated.json()["variants"] if v["is_enabled"]} == {
            small: 1999,
            huge: 2999,
        }
        assert http.get(f"{path}.json").json()["variants"] == updated.json()["variants"]
        assert books_of(sim, http)["products_updated"] == 1

        assert http.post(f"{path}/publish.json", json=parts).status_code == 200
        locked = http.put(f"{path}.json", json={"variants": whole})
        assert_printify_error(locked, 400)
        assert locked.json()["code"] == 8252
        done = {"external": {"id": "x1", "handle": "https://shop.example/x1"}}
        assert http.post(f"{path}/publishing_succeeded.json", json=done).status_code == 200
        assert http.put(f"{path}.json", json={"title": "New title"}).status_code == 200


@pytest.fixture(scope="module")
def two_shops() -> Iterator[SimulatorProcess]:
    env = {"SIM_PRINTIFY_SHOPS": "custom_integration,etsy"}
    proc = SimulatorProcess("printify", free_port(), env=env).start()
    yield proc
    proc.stop()


def test_an_account_with_two_shops_keeps_their_products_apart(two_shops: SimulatorProcess) -> None:
    with client_for(two_shops) as http:
        shops = http.get("/v1/shops.json").json()
        assert [(s["id"], s["sales_channel"]) for s in shops] == [
            (SHOP, "custom_integration"),
            (SHOP + 1, "etsy"),
        ]
        etsy = SHOP + 1
        image = upload(http)
        made = http.post(f"/v1/shops/{etsy}/products.json", json=product_body(image["id"]))
        assert made.status_code == 200, made.text
        product = made.json()
        assert product["shop_id"] == etsy
        assert http.get(f"/v1/shops/{SHOP}/products/{product['id']}.json").status_code == 404
        assert [p["id"] for p in http.get(f"/v1/shops/{etsy}/products.json").json()["data"]] == [
            product["id"]
        ]
        assert http.get(f"/v1/shops/{SHOP}/products.json").json()["data"] == []
        assert http.get(f"/v1/shops/{SHOP + 2}/products.json").status_code == 404
        # Printify confirms an Etsy publication itself: the API handshake is refused there.
        path = f"/v1/shops/{etsy}/products/{product['id']}"
        done = {"external": {"id": "x1", "handle": "https://shop.example/x1"}}
        refused = http.post(f"{path}/publishing_succeeded.json", json=done)
        assert_printify_error(refused, 400, "custom integration")
        assert books_of(two_shops, http)["handshake_refused"] == 1


def test_an_etsy_shop_lists_a_published_product_later_or_refuses_it(
    two_shops: SimulatorProcess,
) -> None:
    etsy = SHOP + 1
    base = f"/v1/shops/{etsy}/products"
    with client_for(two_shops) as http:
        assert http.get("/_sim/channels").json() == {"publish_ms": 3000.0, "failure_rate": 0.0}
        http.post("/_sim/channels", json={"publish_ms": 300}).raise_for_status()
        image = upload(http)["id"]
        pid = http.post(f"{base}.json", json=product_body(image)).json()["id"]
        assert http.post(f"{base}/{pid}/publish.json", json=PUBLISH).json() == {}
        # Accepted, not listed: locked (no edits) until Etsy has it.
        product = http.get(f"{base}/{pid}.json").json()
        assert product["is_locked"] is True and product.get("external") is None
        assert http.put(f"{base}/{pid}.json", json={"title": "x"}).status_code == 400

        def settled() -> dict[str, Any] | None:
            found: dict[str, Any] = http.get(f"{base}/{pid}.json").json()
            return None if found["is_locked"] else found

        listed = wait_until(settled, 10)
        assert listed["external"]["handle"].startswith("https://www.etsy.com/listing/")
        assert listed["external"]["handle"].endswith(listed["external"]["id"])
        assert books_of(two_shops, http)["channel_listed"] == {pid: 1}

        http.post("/_sim/channels", json={"failure_rate": 1}).raise_for_status()
        pid = http.post(f"{base}.json", json=product_body(image)).json()["id"]
        http.post(f"{base}/{pid}/publish.json", json=PUBLISH).raise_for_status()
        refused = wait_until(settled, 10)
        assert refused.get("external") is None  # released without a listing
        assert books_of(two_shops, http)["channel_refused"] == {pid: 1}

        http.post("/_sim/reset").raise_for_status()
        assert http.get("/_sim/channels").json() == {"publish_ms": 3000.0, "failure_rate": 0.0}


def wait_until(predicate: Any, timeout: float) -> Any:
    """``predicate()``'s first truthy value, polled until ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)
    return value


def test_the_catalog_has_its_own_lower_limit() -> None:
    env = {"SIM_PRINTIFY_CATALOG_RPM": "5"}
    with SimulatorProcess("printify", free_port(), env=env) as proc, client_for(proc) as http:
        for _ in range(5):
            assert http.get("/v1/catalog/blueprints/6.json").status_code == 200
        limited = http.get("/v1/catalog/blueprints/6/print_providers.json")
        assert_printify_error(limited, 429)
        assert int(limited.headers["Retry-After"]) >= 1
        assert http.get(f"/v1/shops/{SHOP}/products.json").status_code == 200  # not the catalog


def test_base64_uploads_over_5_mb_are_refused(sim: SimulatorProcess) -> None:
    noise = Image.frombytes("RGB", (1400, 1400), os.urandom(1400 * 1400 * 3))
    buf = io.BytesIO()
    noise.save(buf, "PNG", compress_level=1)
    assert len(buf.getvalue()) > 5 * 1024 * 1024
    with client_for(sim) as http:
        contents = base64.b64encode(buf.getvalue()).decode()
        resp = http.post(
            "/v1/uploads/images.json", json={"file_name": "big.png", "contents": contents}
        )
        assert_printify_error(resp, 400, "must be uploaded by url")
        assert books_of(sim, http)["uploads"] == 0


# --- webhooks ----------------------------------------------------------------------------------


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[tuple[dict[str, str], bytes]], list[int]]]:
    """A local HTTP server recording each POST (headers, body); it answers the statuses queued
    in the third item first, then 200."""
    calls: list[tuple[dict[str, str], bytes]] = []
    answers: list[int] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            calls.append(({k.lower(): v for k, v in self.headers.items()}, body))
            self.send_response(answers.pop(0) if answers else 200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook", calls, answers
    server.shutdown()
    server.server_close()


def test_webhooks_are_registered_listed_without_secret_and_deleted(
    sim: SimulatorProcess, receiver: Any
) -> None:
    url = receiver[0]
    with client_for(sim) as http:
        path = f"/v1/shops/{SHOP}/webhooks.json"
        made = http.post(path, json={"topic": "order:created", "url": url, "secret": "s3cret"})
        assert made.status_code == 200, made.text
        hook = made.json()
        assert HEX24.match(hook["id"])
        assert hook == {
            "id": hook["id"],
            "topic": "order:created",
            "url": url,
            "shop_id": str(SHOP),
        }
        assert http.get(path).json() == [hook]  # the secret is never shown back
        assert_printify_error(http.post(path, json={"topic": "order:eaten", "url": url}), 400, "")
        assert_printify_error(
            http.post(path, json={"topic": "order:created", "url": "ftp://x"}), 400, ""
        )
        gone = http.delete(f"/v1/shops/{SHOP}/webhooks/{hook['id']}.json")
        assert gone.json() == {"id": hook["id"]}
        assert http.get(path).json() == []
        assert http.delete(f"/v1/shops/{SHOP}/webhooks/{hook['id']}.json").status_code == 404


def test_publishing_in_a_custom_shop_calls_the_publish_webhook_signed(
    sim: SimulatorProcess, receiver: Any
) -> None:
    url, calls, answers = receiver
    answers += [500]  # the first try fails: the simulator calls again, like Printify
    with client_for(sim) as http:
        secret = "whsec-" + uuid.uuid4().hex
        hook = {"topic": "product:publish:started", "url": url, "secret": secret}
        assert http.post(f"/v1/shops/{SHOP}/webhooks.json", json=hook).status_code == 200
        base = f"/v1/shops/{SHOP}/products"
        pid = http.post(f"{base}.json", json=product_body(upload(http)["id"])).json()["id"]
        assert http.post(f"{base}/{pid}/publish.json", json=PUBLISH).status_code == 200

        wait_for(lambda: len(calls) >= 2, 10, "two tries of the webhook")
        (_, body1), (headers2, body2) = calls[:2]
        assert body1 == body2  # the same call, tried again
        expected = "sha256=" + hmac.new(secret.encode(), body2, hashlib.sha256).hexdigest()
        assert headers2["x-pfy-signature"] == expected
        call = json.loads(body2)
        assert call["type"] == "product:publish:started"
        assert call["resource"]["id"] == pid and call["resource"]["type"] == "product"
        assert call["resource"]["data"]["shop_id"] == SHOP
        assert call["resource"]["data"]["action"] == "create"
        books = books_of(sim, http)
        assert books["webhooks_delivered"] == {"product:publish:started": 1}
        assert books["webhook_attempts_failed"] == 1
        # Still locked: the custom integration has to answer the handshake.
        assert http.get(f"{base}/{pid}.json").json()["is_locked"] is True
