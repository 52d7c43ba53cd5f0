"""Etsy's Open API v3 as the engine uses it: the subset of Etsy's published OpenAPI document
(``openapi-subset.json``, written by :mod:`simulators.contracts.etsy.extract`) and the list of
operations it keeps.

Etsy publishes the document at https://www.etsy.com/openapi/generated/oas/3.0.0.json; the extract
records which copy it was read from, when, and that copy's sha256 (``x-pod-source``).
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from simulators.contracts.openapi import OpenApiContract, Problem

SUBSET = Path(__file__).with_name("openapi-subset.json")
SOURCE_URL = "https://www.etsy.com/openapi/generated/oas/3.0.0.json"

# Every Etsy operation the engine calls, by Etsy's operationId, and who calls it. The extract
# keeps these and nothing else; a name Etsy no longer publishes makes the extraction fail.
OPERATIONS: dict[str, str] = {
    # shared/adapters/vendors/etsy.py (EtsyClient, used by EtsyChannel to list a product)
    "createDraftListing": "EtsyClient.create_draft_listing",
    "getListingsByShop": "EtsyClient.get_listings_by_shop (finding a product's listing)",
    "getListing": "EtsyClient.get_listing",
    "updateListing": "EtsyClient.update_listing (activation, deactivation)",
    "updateListingInventory": "EtsyClient.update_listing_inventory (also prices again)",
    "uploadListingImage": "EtsyClient.upload_listing_image",
    "getShopReadinessStateDefinitions": "EtsyClient.get_readiness_state_definitions",
    # Served by the simulator for the engine's tests
    "getListingInventory": "the simulator (tests read an inventory back)",
    "getListingImages": "the simulator (tests read a listing's images back)",
    "deleteListing": "EtsyClient.delete_listing (a seller's delete decision)",
    # pod doctor's Etsy checks (read-only)
    "ping": "pod doctor: the app's keystring:shared_secret is accepted",
    "getMe": "pod doctor: the token is valid and whose shop it is",
    "getShop": "pod doctor: the configured shop exists",
    "getShopShippingProfiles": "pod doctor: the shop's shipping profiles",
    "getShopShippingProfile": "pod doctor: the configured shipping profile",
    "getSellerTaxonomyNodes": "pod doctor: the configured taxonomy ids exist",
    "getShopReturnPolicies": "pod doctor: the configured return policy exists",
    "tokenScopes": "pod doctor: the scopes the shop owner granted the app",
}


@functools.cache
def contract() -> OpenApiContract:
    """The extract as a request checker. Etsy's reference calls its list parameters
    comma-separated (``includes``, ``tags``), so a list is taken either repeated or as one
    comma-separated value."""
    return OpenApiContract.from_file(SUBSET, comma_separated=True)


# Answers Etsy gives that its document does not declare, each documented elsewhere: 429 (the
# rate-limit page, developers.etsy.com/documentation/essentials/rate-limits), a gateway's 502,
# 503 and 504 (infrastructure in front of the API, which no operation declares), and OAuth's
# refusals, which carry ``error_description`` beside the ErrorSchema's ``error`` (401
# invalid_token "access token is expired", etsy/open-api issue 519; 403 insufficient_scope,
# issue 598); and 403 for an x-api-key Etsy does not take (without the shared secret: "Shared
# secret is required in x-api-key header.", as clients reported it in February 2026), which
# every operation can answer. tokenScopes' 200 is an object whose properties the document does
# not name.
UNDECLARED_STATUSES = frozenset({429, 502, 503, 504})
OAUTH_ERRORS = frozenset({"invalid_token", "insufficient_scope"})


def answer_problems(method: str, path: str, status: int, body: Any) -> list[Problem]:
    """What is wrong with an answer to ``method path`` by Etsy's document, less what Etsy
    documents elsewhere (:data:`UNDECLARED_STATUSES`, :data:`OAUTH_ERRORS`)."""
    checker = contract()
    operation, _, problems = checker.match(method, path)
    if operation is None:
        # Not an operation: the refusal must still be Etsy's error body.
        if isinstance(body, dict) and isinstance(body.get("error"), str) and set(body) == {"error"}:
            return []
        return [*problems, Problem("response", f"not Etsy's error body: {body!r}"[:200])]
    if (
        status in UNDECLARED_STATUSES
        or status == 403
        or (isinstance(body, dict) and body.get("error") in OAUTH_ERRORS)
    ):
        ok = isinstance(body, dict) and isinstance(body.get("error"), str)
        return [] if ok else [Problem("response", "not an error body")]
    if operation.operation_id == "tokenScopes" and status == 200:
        return [] if isinstance(body, dict) else [Problem("response", "not an object")]
    return checker.check_response(operation.operation_id, status, body)
