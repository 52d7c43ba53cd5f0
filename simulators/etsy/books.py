"""``GET /_sim/books`` (per shop, per app, duplicates) and getShop's answer, both read from
the state."""

from __future__ import annotations

import collections
import time
from typing import Any

from simulators.etsy.rules import CURRENCY
from simulators.etsy.state import EtsyState, Limits, Shop


def duplicates(state: EtsyState) -> list[dict[str, Any]]:
    """Markers (a ``pod-`` tag, or a SKU) carried by more than one live listing of a shop."""
    out: list[dict[str, Any]] = []
    for shop in state.shops.values():
        by_marker: dict[str, list[int]] = collections.defaultdict(list)
        for lid in shop.listing_ids:
            listing = state.listings[lid]
            keys = {
                f"tag:{t.lower()}"
                for t in listing.fields.get("tags") or []
                if t.lower().startswith("pod-")
            }
            keys |= {f"sku:{s}" for s in listing.skus()}
            for key in keys:
                by_marker[key].append(lid)
        out += [
            {"shop_id": shop.shop_id, "marker": k, "listing_ids": ids}
            for k, ids in by_marker.items()
            if len(ids) > 1
        ]
    return out


def books(state: EtsyState, limits: Limits) -> dict[str, Any]:
    shops: dict[str, Any] = {}
    for shop in state.shops.values():
        listings = [state.listings[lid] for lid in shop.listing_ids]
        shops[str(shop.shop_id)] = {
            "listings": [
                {
                    "listing_id": lst.listing_id,
                    "state": lst.state,
                    "title": lst.fields["title"],
                    "tags": list(lst.fields.get("tags") or []),
                    "skus": lst.skus(),
                    "products": len(lst.inventory["products"]),
                    "images": len(lst.images),
                    "quantity": lst.quantity(),
                    "price_cents": lst.price_cents(),
                    # Each product's price (cents) by SKU, as buyers would pay it.
                    "prices": {
                        p["sku"]: p["offerings"][0]["price"]["amount"]
                        for p in lst.inventory["products"]
                        if p["sku"]
                    },
                }
                for lst in listings
            ],
            "created": shop.created,
            "activated": shop.activated,
            "deleted": shop.deleted,
            "inventory_updates": shop.inventory_updates,
            "images_uploaded": shop.images_uploaded,
        }
    apps = {
        key: {
            "requests": app.requests,
            "rate_limited": app.rate_limited,
            "rate_limited_day": app.rate_limited_day,
            "refused": app.refused,
        }
        for key, app in state.apps.items()
    }
    return {
        "shops": shops,
        "apps": apps,
        "created": sum(s.created for s in state.shops.values()),
        "activated": sum(s.activated for s in state.shops.values()),
        "rate_limited": sum(a.rate_limited + a.rate_limited_day for a in state.apps.values()),
        "duplicates": duplicates(state),
        "limits": limits.as_dict(),
    }


def shop_json(shop: Shop, state: EtsyState) -> dict[str, Any]:
    """A shop as getShop answers it (Shop)."""
    listings = [state.listings[lid] for lid in shop.listing_ids]
    now = int(time.time())
    return {
        "shop_id": shop.shop_id,
        "user_id": shop.user_id,
        "shop_name": f"PodSimShop{shop.shop_id}",
        "create_date": now,
        "created_timestamp": now,
        "title": "Print on demand, simulated",
        "announcement": None,
        "currency_code": CURRENCY,
        "is_vacation": False,
        "vacation_message": None,
        "sale_message": None,
        "digital_sale_message": None,
        "update_date": now,
        "updated_timestamp": now,
        "listing_active_count": sum(1 for lst in listings if lst.state == "active"),
        "digital_listing_count": sum(
            1 for lst in listings if lst.fields.get("type", "physical") == "download"
        ),
        "login_name": f"podsim{shop.user_id}",
        "accepts_custom_requests": False,
        "policy_welcome": None,
        "policy_payment": None,
        "policy_shipping": None,
        "policy_refunds": None,
        "policy_additional": None,
        "policy_seller_info": None,
        "policy_update_date": now,
        "policy_has_private_receipt_info": False,
        "has_unstructured_policies": False,
        "vacation_autoreply": None,
        "url": f"https://www.etsy.com/shop/PodSimShop{shop.shop_id}",
        "image_url_760x100": None,
        "num_favorers": 0,
        "languages": ["en-US"],
        "icon_url_fullxfull": None,
        "is_using_structured_policies": True,
        "has_onboarded_structured_policies": True,
        "include_dispute_form_link": False,
        "is_direct_checkout_onboarded": True,
        "is_etsy_payments_onboarded": True,
        "is_calculated_eligible": True,
        "is_opted_in_to_buyer_promise": False,
        "is_shop_us_based": True,
        "transaction_sold_count": 0,
        "shipping_from_country_iso": "US",
        "shop_location_country_iso": "US",
        "review_count": 0,
        "review_average": None,
    }


# --------------------------------------------------------------------------------------------
# App
