"""The Shopify extract: the pruning keeps what the subset names and everything it needs (on a
small introspection written here), and the committed extract is what the script makes of the
source it records (when npm's cache holds that tarball: the test never downloads)."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from graphql import build_client_schema, print_schema

from shared.adapters.vendors.shopify import DOCUMENTS
from shared.adapters.vendors.shopify_contract import API_VERSION
from simulators.contracts.shopify import scopes_path, sdl_path
from simulators.contracts.shopify.extract import (
    OPERATIONS_MODULE,
    ExtractError,
    cache_path,
    cached_tarball,
    extract_from,
    prune,
    recorded_source,
    render_operations,
    scope_requirements,
)


def _t(kind: str, name: str | None = None, of: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"kind": kind, "name": name, "ofType": of}


def _nn(of: dict[str, Any]) -> dict[str, Any]:
    return _t("NON_NULL", None, of)


def _field(
    name: str,
    type_: dict[str, Any],
    args: list[dict[str, Any]] | None = None,
    deprecated: str | None = None,
) -> dict[str, Any]:
    return {
        "name": name,
        "description": f"About {name}.",
        "args": args or [],
        "type": type_,
        "isDeprecated": deprecated is not None,
        "deprecationReason": deprecated,
    }


def _arg(name: str, type_: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "description": None, "type": type_, "defaultValue": None}


STRING, INT, ID = _t("SCALAR", "String"), _t("SCALAR", "Int"), _t("SCALAR", "ID")

# A shop in miniature: a query, a mutation taking nested input, an interface, an enum, a type
# the subset leaves out, and an input type reachable only through another input type.
INTROSPECTION: dict[str, Any] = {
    "queryType": {"name": "QueryRoot"},
    "mutationType": {"name": "Mutation"},
    "subscriptionType": None,
    "directives": [],
    "types": [
        {"kind": "SCALAR", "name": n, "description": None, "specifiedByURL": None}
        for n in ("String", "Int", "ID", "Boolean", "Money")
    ]
    + [
        {
            "kind": "OBJECT",
            "name": "QueryRoot",
            "description": None,
            "interfaces": [],
            "fields": [
                _field("product", _t("OBJECT", "Product"), [_arg("id", _nn(ID))]),
                _field("orders", _t("OBJECT", "Order")),
            ],
        },
        {
            "kind": "OBJECT",
            "name": "Mutation",
            "description": None,
            "interfaces": [],
            "fields": [
                _field(
                    "productSet",
                    _t("OBJECT", "Product"),
                    [_arg("input", _nn(_t("INPUT_OBJECT", "ProductSetInput")))],
                )
            ],
        },
        {
            "kind": "INTERFACE",
            "name": "Node",
            "description": None,
            "interfaces": [],
            "fields": [_field("id", _nn(ID))],
            "possibleTypes": [_t("OBJECT", "Product"), _t("OBJECT", "Order")],
        },
        {
            "kind": "OBJECT",
            "name": "Product",
            "description": None,
            "interfaces": [_t("INTERFACE", "Node")],
            "fields": [
                _field("id", _nn(ID)),
                _field("title", _nn(STRING)),
                _field("status", _t("ENUM", "ProductStatus")),
                _field("publicationCount", INT, deprecated="Use resourcePublicationsCount."),
                _field("orders", _t("OBJECT", "Order")),
            ],
        },
        {
            "kind": "OBJECT",
            "name": "Order",
            "description": None,
            "interfaces": [_t("INTERFACE", "Node")],
            "fields": [_field("id", _nn(ID))],
        },
        {
            "kind": "ENUM",
            "name": "ProductStatus",
            "description": None,
            "enumValues": [
                {
                    "name": "ACTIVE",
                    "description": None,
                    "isDeprecated": False,
                    "deprecationReason": None,
                },
                {
                    "name": "DRAFT",
                    "description": None,
                    "isDeprecated": False,
                    "deprecationReason": None,
                },
            ],
        },
        {
            "kind": "INPUT_OBJECT",
            "name": "ProductSetInput",
            "description": None,
            "isOneOf": False,
            "inputFields": [
                _arg("title", STRING),
                _arg("variants", _t("LIST", None, _nn(_t("INPUT_OBJECT", "VariantInput")))),
            ],
        },
        {
            "kind": "INPUT_OBJECT",
            "name": "VariantInput",
            "description": None,
            "isOneOf": False,
            "inputFields": [_arg("price", _t("SCALAR", "Money"))],
        },
    ],
}
SUBSET = {
    "QueryRoot": ("product",),
    "Mutation": ("productSet",),
    "Product": ("id", "publicationCount", "status", "title"),
}


def test_the_subset_is_pruned_and_closed_over_its_inputs() -> None:
    pruned = prune(INTROSPECTION, SUBSET)
    names = {t["name"] for t in pruned["types"]}
    assert {"Order", "Node"}.isdisjoint(names)  # neither listed nor needed
    assert {"ProductSetInput", "VariantInput", "Money", "ProductStatus"} <= names
    sdl = print_schema(build_client_schema({"__schema": pruned}))  # type: ignore[typeddict-item]
    assert "type Product {\n  id: ID!\n  title: String!\n  status: ProductStatus\n" in sdl
    assert 'publicationCount: Int @deprecated(reason: "Use resourcePublicationsCount.")' in sdl
    assert "orders" not in sdl and "About" not in sdl  # unlisted fields, descriptions
    assert "input VariantInput {\n  price: Money\n}" in sdl


def test_an_interface_kept_must_be_served_whole() -> None:
    pruned = prune(INTROSPECTION, {**SUBSET, "Node": ("id",)})
    product = next(t for t in pruned["types"] if t["name"] == "Product")
    assert [i["name"] for i in product["interfaces"]] == ["Node"]
    with pytest.raises(ExtractError, match="Product implements Node: also list id"):
        prune(INTROSPECTION, {**SUBSET, "Node": ("id",), "Product": ("title",)})


@pytest.mark.parametrize(
    ("subset", "problem"),
    [
        ({**SUBSET, "Product": ("id", "name")}, "Product.name: no such field"),
        ({**SUBSET, "Variant": ("id",)}, "Variant: no such type"),
        ({**SUBSET, "Product": ("id", "orders")}, "Product.orders returns Order, not in"),
        ({"QueryRoot": ("product",), "Product": ("id",)}, "root type Mutation is not in"),
        ({**SUBSET, "ProductSetInput": ("title",)}, "ProductSetInput: a INPUT_OBJECT"),
    ],
)
def test_a_subset_shopify_does_not_have_stops_the_extraction(
    subset: dict[str, tuple[str, ...]], problem: str
) -> None:
    with pytest.raises(ExtractError, match=problem):
        prune(INTROSPECTION, subset)


def test_scopes_are_kept_for_what_was_kept_only() -> None:
    pruned = prune(INTROSPECTION, SUBSET)
    items = [
        {
            "type": "field",
            "typeName": "Mutation",
            "fieldName": "productSet",
            "offlineScopes": ["write_products"],
            "requiredAccess": "`write_products` access scope.",
        },
        {
            "type": "type",
            "typeName": "Product",
            "offlineScopes": ["read_products", "read_products"],
            "requiredAccess": "`read_products` access scope.",
        },
        {
            "type": "type",
            "typeName": "Order",
            "offlineScopes": ["read_orders"],
            "requiredAccess": "`read_orders` access scope.",
        },
        {
            "type": "field",
            "typeName": "Product",
            "fieldName": "title",
            "offlineScopes": [],
            "requiredAccess": "",
        },
    ]
    assert [(r["type"], r["field"], r["anyOf"]) for r in scope_requirements(items, pruned)] == [
        ("Mutation", "productSet", ["write_products"]),
        ("Product", None, ["read_products"]),
    ]
    both = copy.deepcopy(items[:1])
    both[0]["requiredAccess"] = "both `read_markets` as well as `write_markets` for mutations"
    with pytest.raises(ExtractError, match="needs all of its scopes"):
        scope_requirements(both, pruned)


def test_the_operations_scopes_are_derived_from_the_committed_extract() -> None:
    assert OPERATIONS_MODULE.read_text() == render_operations(API_VERSION, DOCUMENTS), (
        "regenerate: python -m simulators.contracts.shopify.extract "
        f"--version {API_VERSION} --operations"
    )


def test_the_committed_extract_is_what_its_recorded_source_gives() -> None:
    source = recorded_source(API_VERSION)
    data = cached_tarball(source)
    if data is None:
        pytest.skip(
            f"{source.package}@{source.version} is not in npm's cache "
            f"({cache_path(source.integrity)}); `npm cache add {source.package}@{source.version}` "
            "or run the extractor once to check the extract against it"
        )
    day = json.loads(scopes_path(API_VERSION).read_text())["extracted"]
    made = extract_from(data, source, API_VERSION, day)
    assert made.sdl == sdl_path(API_VERSION).read_text()
    assert made.scopes == scopes_path(API_VERSION).read_text()
