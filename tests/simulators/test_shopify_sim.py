"""The Shopify simulator over real HTTP: auth and versions, schema validation, productSet's
userErrors and upsert, the leaky bucket's cost extensions and THROTTLED, media processing."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from simulators.process import SimulatorProcess
from tests.support.infra import free_port, wait_for

VERSION = "2025-10"
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
    assert gql(sim, "{ shop { name } }", version="2023-10").status_code == 404
    assert gql(sim, "{ shop { name } }", version="latest").status_code == 404
    ok = gql(sim, "{ shop { name myshopifyDomain } }", shop="cats.myshopify.com")
    assert ok.json()["data"]["shop"] == {"name": "cats", "myshopifyDomain": "cats.myshopify.com"}


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
        ({"title": " "}, "BLANK"),
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
            "VARIANT_ALREADY_EXISTS",
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
            "INVALID",
        ),
        ({"files": [{"originalSource": "not a url", "contentType": "IMAGE"}]}, "INVALID"),
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
