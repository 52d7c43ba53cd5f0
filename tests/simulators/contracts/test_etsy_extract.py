"""The extraction of the engine's subset of Etsy's OpenAPI document
(simulators/contracts/etsy/extract.py): what it keeps and drops, on a small document, and that
the committed extract is exactly what the script makes of Etsy's document (when a copy of it is
at hand: it is not committed)."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from simulators.contracts.etsy import OPERATIONS, SUBSET, contract
from simulators.contracts.etsy.extract import ExtractError, extract, main, prune

# Where the reconstructed copy of Etsy's document is kept on the machine that extracted it.
SOURCE = Path(
    os.environ.get("POD_ETSY_OAS_SOURCE", "/work/vendor-src/etsy/etsy-openapi-original.yml")
)

SMALL = """
openapi: 3.0.2
info:
  title: Etsy Open API v3
  description: <p>HTML a mirror keeps</p>
  version: 3.0.0
  x-last-validated: '2026-05-30'
tags:
  - name: ShopListing
x-tagGroups:
  - name: Listing Management
security:
  - api_key: []
paths:
  /v3/application/shops/{shop_id}/listings:
    parameters:
      - name: shop_id
        in: path
        required: true
        schema: {type: integer, minimum: 1}
    post:
      operationId: createDraftListing
      summary: Etsy Create Draft Listing
      description: Creates a listing.
      requestBody:
        content:
          application/x-www-form-urlencoded:
            schema:
              type: object
              required: [title, description]
              properties:
                title: {type: string, description: the title}
                description: {type: string, description: a field called description}
                example: {type: string, description: a field called example}
            examples:
              Req: {summary: x, value: {title: t}}
      responses:
        '201':
          description: A single ShopListing
          content:
            application/json:
              schema: {$ref: '#/components/schemas/ShopListing'}
              examples:
                Ok: {x-microcks-default: true, value: {listing_id: 1}}
      security:
        - api_key: []
          oauth2: [listings_w]
      x-microcks-operation: {delay: 0}
  /v3/application/listings/{listing_id}/translations:
    get:
      operationId: getListingTranslations
      responses:
        '200': {content: {application/json: {schema: {$ref: '#/components/schemas/Unused'}}}}
components:
  securitySchemes:
    api_key: {type: apiKey, name: x-api-key, in: header, description: keystring:shared_secret}
    oauth2: {type: oauth2, flows: {authorizationCode: {scopes: {listings_w: create/edit listings}}}}
    unused_scheme: {type: http, scheme: basic}
  schemas:
    ShopListing:
      type: object
      properties:
        listing_id: {type: integer, example: 1}
        price: {oneOf: [{$ref: '#/components/schemas/Money'}], example: example}
    Money:
      type: object
      properties:
        amount: {type: integer, description: cents}
    Unused: {type: object}
"""


def small() -> dict[str, Any]:
    return dict(yaml.safe_load(SMALL))


def test_pruning_keeps_the_operations_their_components_and_nothing_else() -> None:
    subset = prune(small(), ["createDraftListing"])

    assert list(subset["paths"]) == ["/v3/application/shops/{shop_id}/listings"]
    item = subset["paths"]["/v3/application/shops/{shop_id}/listings"]
    assert item["parameters"][0]["name"] == "shop_id"  # path-level parameters kept
    op = item["post"]
    # Components referenced, transitively (ShopListing -> Money); the unused one left out.
    assert sorted(subset["components"]["schemas"]) == ["Money", "ShopListing"]
    assert sorted(subset["components"]["securitySchemes"]) == ["api_key", "oauth2"]
    # Descriptions, summaries, examples, x-microcks-* and tag lists dropped...
    text = json.dumps(subset)
    for dropped in ("summary", "examples", "x-microcks", "x-tagGroups", "HTML a mirror keeps"):
        assert dropped not in text, dropped
    assert "tags" not in subset and "description" not in subset["info"]
    assert (
        "example" not in subset["components"]["schemas"]["ShopListing"]["properties"]["listing_id"]
    )
    # ... but never a field that happens to be named like a keyword,
    form = op["requestBody"]["content"]["application/x-www-form-urlencoded"]["schema"]
    assert form["properties"] == {
        "title": {"type": "string"},
        "description": {"type": "string"},
        "example": {"type": "string"},
    }
    assert form["required"] == ["title", "description"]
    # ... nor what the security schemes say of the credentials' format.
    api_key = subset["components"]["securitySchemes"]["api_key"]
    assert api_key["description"] == "keystring:shared_secret"
    # The contract that matters is kept as Etsy wrote it.
    assert op["security"] == [{"api_key": [], "oauth2": ["listings_w"]}]
    assert op["responses"]["201"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ShopListing"
    }
    assert subset["info"]["x-last-validated"] == "2026-05-30"
    assert subset["x-pod-operations"] == {
        "createDraftListing": {
            "method": "POST",
            "path": "/v3/application/shops/{shop_id}/listings",
            "scopes": ["listings_w"],
        }
    }


def test_an_operation_etsy_no_longer_publishes_fails_the_extraction() -> None:
    with pytest.raises(ExtractError, match="no operation createDraftListing2"):
        prune(small(), ["createDraftListing", "createDraftListing2"])
    broken = small()
    broken["components"]["schemas"].pop("Money")
    with pytest.raises(ExtractError, match="Money"):
        prune(broken, ["createDraftListing"])


def test_the_same_source_gives_the_same_bytes(tmp_path: Path) -> None:
    raw = SMALL.encode()
    ops = {"createDraftListing": "a caller"}
    first = extract(raw, small(), date="2026-12-06", operations=ops)
    reordered = small()
    reordered["paths"] = dict(reversed(list(reordered["paths"].items())))
    assert extract(raw, reordered, date="2026-12-06", operations=ops) == first
    recorded = json.loads(first)["x-pod-source"]
    assert recorded["sha256"] == hashlib.sha256(raw).hexdigest()
    assert (recorded["info_version"], recorded["x_last_validated"]) == ("3.0.0", "2026-05-30")
    assert recorded["extracted"] == "2026-12-06"


def test_the_committed_extract_is_what_the_script_makes_of_etsys_document() -> None:
    """Drift: Etsy's document (a copy of it: it cannot be committed) extracted again gives the
    committed file byte for byte."""
    committed = SUBSET.read_text(encoding="utf-8")
    source = json.loads(committed)["x-pod-source"]
    if not SOURCE.exists():
        pytest.skip(
            f"no copy of Etsy's OpenAPI document at {SOURCE} (POD_ETSY_OAS_SOURCE): it is not "
            f"committed; get it from {source['url']} (or the copy x-pod-source names)"
        )
    raw = SOURCE.read_bytes()
    assert hashlib.sha256(raw).hexdigest() == source["sha256"], (
        f"{SOURCE} is not the document the extract was made from: extract it again"
    )
    read_from = source.get("read_from", {})
    argv = ["--source", str(SOURCE), "--date", source["extracted"], "--check"]
    for key in ("repo", "path", "commit", "note"):
        if key in read_from:
            argv += [f"--copy-{key}", read_from[key]]
    assert main(argv) == 0, "the committed extract differs from a fresh extraction"


def test_the_committed_extract_has_every_operation_the_engine_uses() -> None:
    committed = json.loads(SUBSET.read_text(encoding="utf-8"))
    assert sorted(committed["x-pod-operations"]) == sorted(OPERATIONS)
    assert committed["x-pod-source"]["info_version"] == "3.0.0"
    assert sorted(contract().by_id) == sorted(OPERATIONS)
