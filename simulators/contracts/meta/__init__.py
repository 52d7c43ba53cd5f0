"""Meta's Graph API catalog contract as the engine uses it: the extract
(``catalog-extract.json``, written by :mod:`simulators.contracts.meta.extract`) of the nodes,
edges, fields and enums of Meta's machine-readable API description, and the reader the Meta
simulator validates requests and items against.

Meta publishes the description of every Graph node and edge its business SDKs are generated
from in github.com/facebook/facebook-business-sdk-codegen (``api_specs/specs/*.json``, with the
Graph API version in ``api_specs/specs/version.txt``). The extract records the repository, the
commit, its date, the Graph API version and the extraction date (``_source``).

What the codegen specs do not describe is the shape of one item inside ``items_batch``'s
``requests`` (the spec types it ``map``): Meta's catalog documentation names those fields by
their feed names (``id``, ``title``, ``link``, ``image_link``...). :data:`ITEM_FIELDS` maps each
feed field the engine writes to the ProductItem field it becomes, and the extraction takes the
field's type and enum from the ProductItem spec (a mapped field Meta no longer publishes stops
the extraction).
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

EXTRACT = Path(__file__).with_name("catalog-extract.json")
REPOSITORY = "facebook/facebook-business-sdk-codegen"
# Meta's catalog documentation for the item fields of items_batch (not machine-readable).
ITEMS_DOC = (
    "https://developers.facebook.com/docs/marketing-api/catalog/reference#supported-fields"
    " (Catalog Batch API, items_batch; read 2026-12-06)"
)

# The edges the engine and its doctor call, by node: (method, edge).
EDGES: dict[str, list[tuple[str, str]]] = {
    "ProductCatalog": [
        ("POST", "items_batch"),
        ("GET", "check_batch_request_status"),
        ("GET", "products"),
    ],
}
# Nodes whose fields the engine reads.
NODES = ("CheckBatchRequestStatus", "ProductItem", "ProductItemError", "ProductCatalog")

# Feed field of an items_batch item -> (ProductItem field, required by Meta for a new item).
# The required ones are the fields the catalog documentation requires of every product item
# (id, title, description, availability, condition, price, link, image_link, brand).
ITEM_FIELDS: dict[str, tuple[str, bool]] = {
    "id": ("retailer_id", True),
    "title": ("name", True),
    "description": ("description", True),
    "availability": ("availability", True),
    "condition": ("condition", True),
    "price": ("price", True),
    "link": ("url", True),
    "image_link": ("image_url", True),
    "brand": ("brand", True),
    "item_group_id": ("retailer_product_group_id", False),
    "size": ("size", False),
    "color": ("color", False),
    "sale_price": ("sale_price", False),
    "additional_image_link": ("additional_image_urls", False),
    "inventory": ("inventory", False),
    # A seller's unpublish: "staging" hides the item from shoppers and keeps it (ProductItem
    # visibility: published, staging).
    "visibility": ("visibility", False),
}


@dataclass(frozen=True)
class ItemField:
    name: str
    graph_field: str
    type: str
    required: bool
    enum: tuple[str, ...] | None


@dataclass(frozen=True)
class CatalogContract:
    """The extract, read: what the simulator checks requests and items against."""

    raw: dict[str, Any]

    @property
    def version(self) -> str:
        return str(self.raw["_source"]["graph_api_version"])

    def edge(self, node: str, method: str, edge: str) -> dict[str, Any]:
        return dict(self.raw["edges"][node][f"{method} {edge}"])

    def required_params(self, node: str, method: str, edge: str) -> list[str]:
        return [p["name"] for p in self.edge(node, method, edge)["params"] if p["required"]]

    def params(self, node: str, method: str, edge: str) -> set[str]:
        return {p["name"] for p in self.edge(node, method, edge)["params"]}

    def fields(self, node: str) -> set[str]:
        return set(self.raw["nodes"][node])

    def enum(self, node: str, field: str) -> tuple[str, ...]:
        return tuple(self.raw["enums"][f"{node}.{field}"])

    def item_fields(self) -> dict[str, ItemField]:
        return {
            name: ItemField(
                name,
                spec["graph_field"],
                spec["type"],
                spec["required"],
                None if spec["enum"] is None else tuple(spec["enum"]),
            )
            for name, spec in self.raw["item_fields"].items()
        }


@functools.cache
def contract() -> CatalogContract:
    return CatalogContract(json.loads(EXTRACT.read_text()))
