"""Etsy's Open API v3 as the engine uses it: the subset of Etsy's published OpenAPI document
(``openapi-subset.json``, written by :mod:`simulators.contracts.etsy.extract`) and the list of
operations it keeps.

Etsy publishes the document at https://www.etsy.com/openapi/generated/oas/3.0.0.json; the extract
records which copy it was read from, when, and that copy's sha256 (``x-pod-source``).
"""

from __future__ import annotations

import functools
from pathlib import Path

from simulators.contracts.openapi import OpenApiContract

SUBSET = Path(__file__).with_name("openapi-subset.json")
SOURCE_URL = "https://www.etsy.com/openapi/generated/oas/3.0.0.json"

# Every Etsy operation the engine calls, by Etsy's operationId, and who calls it. The extract
# keeps these and nothing else; a name Etsy no longer publishes makes the extraction fail.
OPERATIONS: dict[str, str] = {
    # shared/vendors/etsy.py (EtsyClient, used by EtsyChannel to list a product)
    "createDraftListing": "EtsyClient.create_draft_listing",
    "getListingsByShop": "EtsyClient.get_listings_by_shop (finding a product's listing)",
    "getListing": "EtsyClient.get_listing",
    "updateListing": "EtsyClient.update_listing (activation)",
    "updateListingInventory": "EtsyClient.update_listing_inventory",
    "uploadListingImage": "EtsyClient.upload_listing_image",
    "getShopReadinessStateDefinitions": "EtsyClient.get_readiness_state_definitions",
    # Served by the simulator for the engine's tests
    "getListingInventory": "the simulator (tests read an inventory back)",
    "getListingImages": "the simulator (tests read a listing's images back)",
    "deleteListing": "the simulator (tests delete a listing, as a seller does on Etsy)",
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
