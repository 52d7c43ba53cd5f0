"""The Shopify simulator over real HTTP: auth and versions, schema validation against the
extract of Shopify's schema, access scopes, the client credentials grant and its expiring
tokens, productSet's userErrors and upsert, the leaky bucket's cost extensions and THROTTLED,
media processing."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from shared.adapters.vendors.shopify_contract import API_VERSION
from simulators.process import SimulatorProcess
from tests.support.infra import free_port, wait_for

VERSION = API_VERSION
# Shopify's calendar on this day: 2026-01 to 2026-10 supported, 2027-01 the release candidate.
TODAY = "2026-12-06"
CREATE = """
mutation Make($input: ProductSetInput!, $identifier: ProductSetIdentifiers) {
  productSet(input: $input, identifier: $identifier, synchronous: true) {
    product { id handle status onlineStoreUrl variants(first: 10) { nodes { sku price } }
              media(first: 5) { nodes { status } } }
    userErrors { field message code }
  }
}"""


@pytest.fixture(scope="module")
def sim() -> Iterator[SimulatorProcess]:
    env = {
        "SIM_SHOPIFY_BUCKET": "300",
        "SIM_SHOPIFY_RESTORE_RATE": "50",
        "SIM_SHOPIFY_MEDIA_MS": "300",
        "SIM_SHOPIFY_TODAY": TODAY,
        "SIM_SHOPIFY_TOKEN_TTL_S": "1",
    }
    with SimulatorProcess("shopify", free_port(), env=env) as proc:
        yield proc


def gql(
    sim: SimulatorProcess,
    query: str,
    variables: dict[str, Any] | None = None,
    *,
    token: str | None = "tok",
    version: str = VERSION,
    shop: str | None = None,
) -> httpx.Response:
    headers = {"Host": shop or f"s-{uuid.uuid4().hex[:8]}.myshopify.com"}
    if token is not None:
        headers["X-Shopify-Access-Token"] = token
    return httpx.post(
        f"{sim.url}/admin/api/{version}/graphql.json",
        json={"query": query, "variables": variables or {}},
        headers=headers,
        timeout=10,
    )


def tee(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "title": "Moon Cat Tee",
        "productOptions": [
            {"name": "Color", "values": [{"name": "Black"}]},
            {"name": "Size", "values": [{"name": "S"}, {"name": "M"}]},
        ],
        "variants": [
            {
                "optionValues": [
                    {"optionName": "Color", "name": "Black"},
                    {"optionName": "Size", "name": s},
                ],
                "price": "24.99",
                "inventoryItem": {"sku": f"SKU-{s}"},
            }
            for s in ("S", "M")
        ],
        "files": [{"originalSource": "https://images.test/moon.png", "contentType": "IMAGE"}],
    }
    return {**body, **changes}


def test_auth_and_version(sim: SimulatorProcess) -> None:
    missing = gql(sim, "{ shop { name } }", token=None)
    assert (
        missing.status_code == 401 and "Invalid API key or access token" in missing.json()["errors"]
    )
    ok = gql(sim, "{ shop { name myshopifyDomain } }", shop="cats.myshopify.com")
    assert ok.json()["data"]["shop"] == {"name": "cats", "myshopifyDomain": "cats.myshopify.com"}
    assert ok.headers["x-shopify-api-version"] == VERSION


@pytest.mark.parametrize(
    ("asked", "served"),
    [
        ("2026-07", "2026-07"),
        ("2026-01", "2026-01"),  # the oldest supported on TODAY
        ("2025-10", "2026-01"),  # unsupported since 2026-10-01: falls forward
        ("2023-10", "2026-01"),
        ("2027-01", "2027-01"),  # the release candidate
        ("unstable", "unstable"),
        ("2027-04", None),  # not released
        ("2026-05", None),  # not a version
        ("latest", None),
    ],
)
def test_versions_follow_shopifys_calendar(
    sim: SimulatorProcess, asked: str, served: str | None
) -> None:
    answer = gql(sim, "{ shop { name } }", version=asked)
    if served is None:
        assert answer.status_code == 404
    else:
        assert answer.status_code == 200 and answer.json()["data"]["shop"]["name"]
        assert answer.headers["x-shopify-api-version"] == served


def test_public_api_versions_lists_the_supported_ones(sim: SimulatorProcess) -> None:
    versions = gql(sim, "{ publicApiVersions { handle supported } }").json()["data"]
    listed = {v["handle"]: v["supported"] for v in versions["publicApiVersions"]}
    assert listed == {
        "2026-01": True,
        "2026-04": True,
        "2026-07": True,
        "2026-10": True,
        "2027-01": False,
        "unstable": False,
    }


def test_queries_are_validated_against_the_schema(sim: SimulatorProcess) -> None:
    unknown = gql(sim, "{ shop { nope } }").json()
    assert "data" not in unknown and "nope" in unknown["errors"][0]["message"]
    syntax = gql(sim, "{ shop { ").json()
    assert syntax["errors"][0]["message"].startswith("Syntax Error")
    wrong_type = gql(sim, CREATE, {"input": {"title": 5}}).json()
    assert "errors" in wrong_type and "data" not in wrong_type


def test_product_set_creates_then_upserts_by_handle(sim: SimulatorProcess) -> None:
    shop = f"up-{uuid.uuid4().hex[:6]}.myshopify.com"
    made = gql(
        sim,
        CREATE,
        {"input": tee(handle="moon-cat"), "identifier": {"handle": "moon-cat"}},
        shop=shop,
    ).json()
    product = made["data"]["productSet"]["product"]
    assert made["data"]["productSet"]["userErrors"] == []
    assert product["handle"] == "moon-cat" and product["status"] == "ACTIVE"
    assert [v["sku"] for v in product["variants"]["nodes"]] == ["SKU-S", "SKU-M"]
    assert product["onlineStoreUrl"] is None  # not published yet
    assert product["media"]["nodes"] == [{"status": "PROCESSING"}]

    again = gql(
        sim,
        CREATE,
        {"input": tee(title="Moon Cat Tee v2"), "identifier": {"handle": "moon-cat"}},
        shop=shop,
    ).json()
    assert again["data"]["productSet"]["product"]["id"] == product["id"]
    books = httpx.get(f"{sim.url}/_sim/books").json()["shops"][shop]
    assert (books["created"], books["product_sets"]) == (1, 2)

    def ready() -> bool:
        q = (
            '{ productByIdentifier(identifier: {handle: "moon-cat"}) '
            "{ media(first: 5) { nodes { status } } } }"
        )
        nodes = gql(sim, q, shop=shop).json()["data"]["productByIdentifier"]["media"]["nodes"]
        return bool(nodes == [{"status": "READY"}])

    wait_for(ready, 5, "the media to be processed")


@pytest.mark.parametrize(
    ("changes", "code"),
    [
        ({"title": " "}, "INVALID_PRODUCT"),
        (
            {
                "productOptions": [{"name": n, "values": [{"name": "x"}]} for n in "ABCD"],
                "variants": [],
            },
            "OPTIONS_OVER_LIMIT",
        ),
        (
            {
                "variants": [
                    {
                        "optionValues": [
                            {"optionName": "Color", "name": "Red"},
                            {"optionName": "Size", "name": "S"},
                        ],
                        "price": "1.00",
                    }
                ]
            },
            "OPTION_VALUE_DOES_NOT_EXIST",
        ),
        (
            {
                "variants": [
                    {"optionValues": [{"optionName": "Color", "name": "Black"}], "price": "1.00"}
                ]
            },
            "INVALID_VARIANT",
        ),
        (
            {
                "variants": [
                    {
                        "optionValues": [
                            {"optionName": "Color", "name": "Black"},
                            {"optionName": "Size", "name": "S"},
                        ],
                        "price": "1.00",
                    }
                ]
                * 2
            },
            "INVALID_VARIANT",
        ),
        (
            {
                "variants": [
                    {
                        "optionValues": [
                            {"optionName": "Color", "name": "Black"},
                            {"optionName": "Size", "name": "S"},
                        ],
                        "price": "-1",
                    }
                ]
            },
            "INVALID_VARIANT",
        ),
        ({"files": [{"originalSource": "not a url", "contentType": "IMAGE"}]}, "INVALID_INPUT"),
    ],
)
def test_product_set_user_errors(sim: SimulatorProcess, changes: dict[str, Any], code: str) -> None:
    answer = gql(sim, CREATE, {"input": tee(**changes)}).json()["data"]["productSet"]
    assert answer["product"] is None
    [error] = answer["userErrors"]
    assert error["code"] == code and error["message"] and error["field"][0] == "input"


def test_a_handle_taken_by_another_product_is_refused(sim: SimulatorProcess) -> None:
    shop = f"h-{uuid.uuid4().hex[:6]}.myshopify.com"
    gql(sim, CREATE, {"input": tee(handle="taken")}, shop=shop)
    clash = gql(sim, CREATE, {"input": tee(handle="taken")}, shop=shop).json()["data"]["productSet"]
    assert clash["userErrors"][0]["code"] == "HANDLE_NOT_UNIQUE"


def test_every_answer_carries_its_cost_and_the_bucket_throttles(sim: SimulatorProcess) -> None:
    shop = f"t-{uuid.uuid4().hex[:6]}.myshopify.com"
    heavy = "{ publications(first: 120) { nodes { id name } } }"
    first = gql(sim, heavy, shop=shop).json()
    cost = first["extensions"]["cost"]
    assert cost["requestedQueryCost"] == 120
    assert cost["throttleStatus"]["maximumAvailable"] == 300
    assert cost["throttleStatus"]["restoreRate"] == 50
    assert 175 <= cost["throttleStatus"]["currentlyAvailable"] <= 181
    gql(sim, heavy, shop=shop)
    throttled = gql(sim, heavy, shop=shop)
    assert throttled.status_code == 200
    body = throttled.json()
    assert body["errors"][0]["extensions"]["code"] == "THROTTLED" and "data" not in body
    assert body["extensions"]["cost"]["actualQueryCost"] is None
    assert httpx.get(f"{sim.url}/_sim/books").json()["shops"][shop]["throttled"] == 1


def test_counts_are_objects_with_a_precision(sim: SimulatorProcess) -> None:
    """Since 2024-04 resourcePublicationsCount is a Count: a bare selection is refused, as
    Shopify refuses it ("must have a selection of subfields")."""
    shop = f"c-{uuid.uuid4().hex[:6]}.myshopify.com"
    made = gql(sim, CREATE, {"input": tee(handle="counted")}, shop=shop).json()
    product_id = made["data"]["productSet"]["product"]["id"]
    bare = gql(sim, f'{{ product(id: "{product_id}") {{ resourcePublicationsCount }} }}', shop=shop)
    [error] = bare.json()["errors"]
    assert "must have a selection of subfields" in error["message"]
    counted = gql(
        sim,
        f'{{ product(id: "{product_id}") {{ resourcePublicationsCount {{ count precision }} }} }}',
        shop=shop,
    ).json()
    assert counted["data"]["product"]["resourcePublicationsCount"] == {
        "count": 0,
        "precision": "EXACT",
    }


def test_a_deprecated_field_still_answers_and_an_unknown_enum_value_is_refused(
    sim: SimulatorProcess,
) -> None:
    pubs = gql(sim, "{ publications(first: 5) { nodes { name catalog { title } } } }").json()
    nodes = pubs["data"]["publications"]["nodes"]
    assert {n["name"] for n in nodes} == {n["catalog"]["title"] for n in nodes} >= {"Online Store"}
    bad = gql(sim, CREATE, {"input": tee(status="PUBLISHED")}).json()
    assert "data" not in bad and "PUBLISHED" in bad["errors"][0]["message"]


def set_app(sim: SimulatorProcess, **changes: Any) -> dict[str, Any]:
    answer: dict[str, Any] = httpx.post(f"{sim.url}/_sim/app", json=changes, timeout=5).json()
    return answer


@pytest.fixture
def app(sim: SimulatorProcess) -> Iterator[SimulatorProcess]:
    """The simulator's app as configured at start, restored after the test."""
    yield sim
    set_app(
        sim,
        client_id="sim-shopify-client",
        client_secret="sim-shopify-secret",
        scopes="write_products,write_publications",
        installed=True,
        token_ttl_s=1,
    )


def grant(sim: SimulatorProcess, secret: str = "sim-shopify-secret", **form: str) -> httpx.Response:
    return httpx.post(
        f"{sim.url}/admin/oauth/access_token",
        data={
            "grant_type": "client_credentials",
            "client_id": "sim-shopify-client",
            "client_secret": secret,
            **form,
        },
        headers={"Host": "grants.myshopify.com"},
        timeout=5,
    )


def test_the_client_credentials_grant_gives_a_token_that_expires(app: SimulatorProcess) -> None:
    answer = grant(app)
    assert answer.status_code == 200
    body = answer.json()
    assert set(body) == {"access_token", "scope", "expires_in"}
    assert body["expires_in"] == 1 and body["scope"] == "write_products,write_publications"
    token = body["access_token"]
    assert gql(app, "{ shop { name } }", token=token).status_code == 200
    wait_for(
        lambda: gql(app, "{ shop { name } }", token=token).status_code == 401,
        5,
        "the issued token to expire",
    )
    expired = gql(app, "{ shop { name } }", token=token)
    assert "Invalid API key or access token" in expired.json()["errors"]
    # Shopify's libraries send JSON; its docs, a form: both are taken.
    as_json = httpx.post(
        f"{app.url}/admin/oauth/access_token",
        json={
            "grant_type": "client_credentials",
            "client_id": "sim-shopify-client",
            "client_secret": "sim-shopify-secret",
        },
        timeout=5,
    )
    assert as_json.status_code == 200 and as_json.json()["access_token"] != token


def test_a_refused_grant_and_an_uninstalled_app(app: SimulatorProcess) -> None:
    wrong = grant(app, secret="shpss_wrong")
    assert (wrong.status_code, wrong.json()["error"]) == (400, "invalid_client")
    other = grant(app, grant_type="authorization_code")
    assert (other.status_code, other.json()["error"]) == (400, "unsupported_grant_type")
    set_app(app, token_ttl_s=3600)
    token = grant(app).json()["access_token"]
    assert gql(app, "{ shop { name } }", token=token).status_code == 200
    httpx.post(f"{app.url}/_sim/app/uninstall", timeout=5)
    assert gql(app, "{ shop { name } }", token=token).status_code == 401
    refused = grant(app)
    assert (refused.status_code, refused.json()["error"]) == (400, "invalid_client")
    httpx.post(f"{app.url}/_sim/app/install", timeout=5)
    assert grant(app).status_code == 200


def test_a_field_beyond_the_tokens_scopes_is_access_denied(app: SimulatorProcess) -> None:
    set_app(app, scopes="read_products,read_publications")
    answer = gql(app, CREATE, {"input": tee()}).json()
    assert answer["data"] == {"productSet": None}
    [error] = answer["errors"]
    assert error["extensions"]["code"] == "ACCESS_DENIED"
    assert "write_products" in error["message"] and error["path"] == ["productSet"]
    scopes = gql(app, "{ currentAppInstallation { accessScopes { handle } } }").json()["data"]
    handles = {s["handle"] for s in scopes["currentAppInstallation"]["accessScopes"]}
    assert handles == {"read_products", "read_publications"}
    # write_products grants read_products: reading a product needs nothing more.
    set_app(app, scopes="write_products")
    read = '{ productByIdentifier(identifier: {handle: "x"}) { id } }'
    assert "errors" not in gql(app, read).json()


def test_a_shops_publications_can_be_set(sim: SimulatorProcess) -> None:
    shop = f"p-{uuid.uuid4().hex[:6]}.myshopify.com"
    httpx.post(
        f"{sim.url}/_sim/publications",
        json={"shop": shop, "publications": [{"id": "gid://shopify/Publication/9", "name": "POS"}]},
        timeout=5,
    )
    one = '{ publication(id: "gid://shopify/Publication/9") { id catalog { title } } }'
    assert gql(sim, one, shop=shop).json()["data"]["publication"]["catalog"]["title"] == "POS"
    none = '{ publication(id: "gid://shopify/Publication/1") { id } }'
    assert gql(sim, none, shop=shop).json()["data"]["publication"] is None


STATUS = """
mutation S($product: ProductUpdateInput!) {
  productUpdate(product: $product) {
    product { id status onlineStoreUrl } userErrors { field message }
  }
}"""
DELETE = """
mutation D($input: ProductDeleteInput!) {
  productDelete(input: $input) { deletedProductId userErrors { field message } }
}"""
PRICES = """
mutation P($productId: ID!, $variants: [ProductVariantsBulkInput!]!) {
  productVariantsBulkUpdate(productId: $productId, variants: $variants) {
    productVariants { id price } userErrors { field message code }
  }
}"""
PUBLISH_ONLINE = """
mutation Pub($id: ID!) {
  publishablePublish(id: $id, input: [{publicationId: "gid://shopify/Publication/1"}]) {
    userErrors { field message }
  }
}"""


def _listed(sim: SimulatorProcess, shop: str) -> dict[str, Any]:
    made = gql(
        sim, CREATE, {"input": tee(handle="undo"), "identifier": {"handle": "undo"}}, shop=shop
    ).json()["data"]["productSet"]["product"]
    assert gql(sim, PUBLISH_ONLINE, {"id": made["id"]}, shop=shop).json()["data"]
    return dict(made)


def _books(sim: SimulatorProcess, shop: str) -> dict[str, Any]:
    return dict(httpx.get(f"{sim.url}/_sim/books", timeout=5).json()["shops"][shop])


def test_a_draft_is_off_the_online_store_and_a_deleted_product_is_gone(
    sim: SimulatorProcess,
) -> None:
    shop = f"u-{uuid.uuid4().hex[:6]}.myshopify.com"
    product = _listed(sim, shop)

    drafted = gql(sim, STATUS, {"product": {"id": product["id"], "status": "DRAFT"}}, shop=shop)
    answer = drafted.json()["data"]["productUpdate"]
    assert answer["userErrors"] == []
    assert (answer["product"]["status"], answer["product"]["onlineStoreUrl"]) == ("DRAFT", None)
    assert [p["status"] for p in _books(sim, shop)["products"]] == ["DRAFT"]

    # A status the schema does not have is refused before anything runs.
    bad = gql(sim, STATUS, {"product": {"id": product["id"], "status": "GONE"}}, shop=shop)
    assert "errors" in bad.json() and "data" not in bad.json()
    unknown = gql(sim, STATUS, {"product": {"id": "gid://shopify/Product/1", "status": "DRAFT"}})
    assert unknown.json()["data"]["productUpdate"]["userErrors"] == [
        {"field": ["id"], "message": "Product does not exist"}
    ]

    gone = gql(sim, DELETE, {"input": {"id": product["id"]}}, shop=shop).json()
    assert gone["data"]["productDelete"] == {"deletedProductId": product["id"], "userErrors": []}
    again = gql(sim, DELETE, {"input": {"id": product["id"]}}, shop=shop).json()
    assert again["data"]["productDelete"]["deletedProductId"] is None
    assert again["data"]["productDelete"]["userErrors"][0]["field"] == ["id"]
    books = _books(sim, shop)
    assert (books["products"], books["deletes"], books["updates"]) == ([], 1, 1)


def test_variant_prices_are_set_all_or_none(sim: SimulatorProcess) -> None:
    shop = f"v-{uuid.uuid4().hex[:6]}.myshopify.com"
    product = _listed(sim, shop)
    ids = [
        v["id"]
        for v in gql(
            sim,
            '{ productByIdentifier(identifier: {handle: "undo"}) '
            "{ variants(first: 5) { nodes { id } } } }",
            shop=shop,
        ).json()["data"]["productByIdentifier"]["variants"]["nodes"]
    ]

    refused = gql(
        sim,
        PRICES,
        {
            "productId": product["id"],
            "variants": [{"id": ids[0], "price": "30.00"}, {"id": ids[1], "price": "-1"}],
        },
        shop=shop,
    ).json()["data"]["productVariantsBulkUpdate"]
    assert [e["code"] for e in refused["userErrors"]] == ["NEGATIVE_PRICE_VALUE"]
    assert _books(sim, shop)["products"][0]["prices"] == ["24.99", "24.99"]  # none changed
    stranger = gql(
        sim,
        PRICES,
        {"productId": product["id"], "variants": [{"id": "gid://shopify/ProductVariant/1"}]},
        shop=shop,
    ).json()["data"]["productVariantsBulkUpdate"]
    assert [e["code"] for e in stranger["userErrors"]] == ["PRODUCT_VARIANT_DOES_NOT_EXIST"]

    done = gql(
        sim,
        PRICES,
        {
            "productId": product["id"],
            "variants": [{"id": ids[0], "price": "30"}, {"id": ids[1], "price": "31.5"}],
        },
        shop=shop,
    ).json()["data"]["productVariantsBulkUpdate"]
    assert done["userErrors"] == []
    assert _books(sim, shop)["products"][0]["prices"] == ["30.00", "31.50"]
