"""What the TikTok Shop simulator holds: the apps' tokens, the shop, its images and products
(with their audits), and what it counted."""

from __future__ import annotations

import collections
import hmac
import random
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from simulators.tiktok.settings import TikTokSimSettings

# A small category tree: (id, parent, name, is_leaf). The leaves are the engine's product types.
CATEGORIES: tuple[tuple[str, str, str, bool], ...] = (
    ("824328", "0", "Menswear & Underwear", False),
    ("601226", "824328", "T-shirts", True),
    ("601213", "824328", "Hoodies & Sweatshirts", True),
    ("600001", "0", "Home Supplies", False),
    ("600024", "600001", "Mugs", True),
)
# Per leaf: (id, name, type, required, values) as Get Attributes lists them.
MATERIAL = ("100347", "Material", "PRODUCT_PROPERTY")
ATTRIBUTES: dict[str, list[tuple[str, str, str, bool, tuple[str, ...]]]] = {
    leaf: [
        (*MATERIAL, True, ("Cotton", "Polyester", "Ceramic")),
        ("100392", "Pattern", "PRODUCT_PROPERTY", False, ("Solid", "Graphic")),
        ("100000", "Color", "SALES_PROPERTY", False, ()),
        ("100007", "Size", "SALES_PROPERTY", False, ()),
    ]
    for leaf in ("601226", "601213")
}
ATTRIBUTES["600024"] = [
    (*MATERIAL, True, ("Ceramic", "Stoneware")),
    ("101610", "Capacity", "PRODUCT_PROPERTY", True, ("11 oz", "15 oz")),
]
LIVE = ("PENDING", "ACTIVATE", "FAILED", "DRAFT", "SELLER_DEACTIVATED", "PLATFORM_DEACTIVATED")


@dataclass
class Grant:
    """One seller's authorisation of one app: its current tokens."""

    app_key: str
    access: dict[str, float] = field(default_factory=dict)  # token -> expires at (epoch)
    refresh: str = ""
    refresh_expires: float = 0.0


@dataclass
class Product:
    id: str
    body: dict[str, Any]
    created: float
    audit_due: float
    fails_audit: bool
    status: str = "PENDING"
    # TikTok's audit_failed_reasons once the audit failed: (position, reasons, suggestions).
    reasons: list[dict[str, Any]] = field(default_factory=list)

    def settle(self, now: float) -> None:
        if self.status == "PENDING" and now >= self.audit_due:
            self.status = "FAILED" if self.fails_audit else "ACTIVATE"

    def seller_skus(self) -> list[str]:
        return [str(s.get("seller_sku") or "") for s in self.body.get("skus") or []]


@dataclass
class TikTokState:
    settings: TikTokSimSettings
    rng: random.Random = field(default_factory=random.Random)
    grants: list[Grant] = field(default_factory=list)
    spent_refresh: set[str] = field(default_factory=set)
    retired_access: set[str] = field(default_factory=set)
    products: dict[str, Product] = field(default_factory=dict)
    images: dict[str, bytes] = field(default_factory=dict)
    counts: collections.Counter[str] = field(default_factory=collections.Counter)
    accepted_at: dict[str, list[float]] = field(
        default_factory=lambda: collections.defaultdict(list)
    )

    def __post_init__(self) -> None:
        if self.settings.seed is not None:
            self.rng.seed(self.settings.seed)
        self.secrets = self.settings.app_secrets()
        self.reset()

    def reset(self) -> None:
        self.grants.clear()
        self.spent_refresh.clear()
        self.retired_access.clear()
        self.products.clear()
        self.images.clear()
        self.counts.clear()
        self.accepted_at.clear()
        now = time.time()
        for refresh in self.settings.known_refresh_tokens():
            for app_key in self.secrets:
                self.grants.append(
                    Grant(
                        app_key, refresh=refresh, refresh_expires=now + self.settings.refresh_ttl_s
                    )
                )

    # --- tokens --------------------------------------------------------------------------------

    def issue(self, grant: Grant) -> dict[str, Any]:
        """New tokens for ``grant`` (the refresh token rotates: the old one is spent)."""
        now = time.time()
        if grant.refresh:
            self.spent_refresh.add(grant.refresh)
        self.retired_access.update(grant.access)  # a renewed grant's old token is expired
        access = f"ROW_{secrets.token_urlsafe(24)}"
        grant.access = {access: now + self.settings.access_ttl_s}
        grant.refresh = f"ROW_{secrets.token_urlsafe(24)}"
        grant.refresh_expires = now + self.settings.refresh_ttl_s
        self.counts["tokens_issued"] += 1
        return {
            "access_token": access,
            "access_token_expire_in": int(grant.access[access]),
            "refresh_token": grant.refresh,
            "refresh_token_expire_in": int(grant.refresh_expires),
            "open_id": "sim-open-id",
            "seller_name": "POD Engine simulated seller",
            "seller_base_region": self.settings.shop_region,
            "user_type": 0,
            "granted_scopes": ["seller.product.basic", "seller.product.write"],
        }

    def grant_of_refresh(self, app_key: str, refresh: str) -> Grant | None:
        for grant in self.grants:
            if grant.app_key == app_key and hmac.compare_digest(grant.refresh, refresh):
                return grant
        if (
            self.settings.accept_unknown_tokens
            and refresh not in self.spent_refresh
            and app_key in self.secrets
        ):
            grant = Grant(app_key, refresh=refresh, refresh_expires=time.time() + 3600)
            self.grants.append(grant)
            return grant
        return None

    def check_access(self, app_key: str, token: str) -> str | None:
        """None when ``token`` is good for ``app_key``; else ``invalid`` or ``expired``."""
        now = time.time()
        for grant in self.grants:
            if grant.app_key != app_key:
                continue
            for issued, expires in grant.access.items():
                if hmac.compare_digest(issued, token):
                    return None if now < expires else "expired"
        if token in self.retired_access:
            return "expired"
        if self.settings.accept_unknown_tokens and token:
            # A token it never issued (made before it started): good until its TTL from now.
            self.grants.append(Grant(app_key, access={token: now + self.settings.access_ttl_s}))
            return None
        return "invalid"

    def expire_access(self) -> int:
        n = 0
        for grant in self.grants:
            for token in grant.access:
                grant.access[token] = 0.0
                n += 1
        return n

    # --- products ------------------------------------------------------------------------------

    def new_id(self) -> str:
        while True:
            pid = str(1729_000_000_000_000_000 + self.rng.randrange(10**15))
            if pid not in self.products:
                return pid

    def create(self, body: dict[str, Any]) -> Product:
        now = time.time()
        product = Product(self.new_id(), body, now, now, False)
        self._audit(product, body, now)
        self.products[product.id] = product
        self.counts["created"] += 1
        return product

    def resubmit(self, product: Product, body: dict[str, Any]) -> Product:
        """Edit Product: the product takes the new body and goes through the audit again
        (a product that failed it, or a live one, is reviewed afresh)."""
        product.body = body
        product.status = "PENDING"
        self._audit(product, body, time.time())
        self.counts["edited"] += 1
        return product

    def _audit(self, product: Product, body: dict[str, Any], now: float) -> None:
        """When the audit ends and how: failed for the configured word in the title, or at the
        configured rate, with TikTok's reasons."""
        title = str(body.get("title") or "")
        word = self.settings.audit_failure_word.strip().lower()
        worded = bool(word and word in title.lower())
        fails = worded or self.rng.random() < self.settings.audit_failure_rate
        product.audit_due = now + self.settings.audit_s
        product.fails_audit = fails
        product.reasons = []
        if worded:
            product.reasons = [
                {
                    "position": "product title",
                    "reasons": [f"The title contains a prohibited word: {word}"],
                    "suggestions": ["Remove prohibited or misleading words from the title."],
                    "listing_platform": "TIKTOK_SHOP",
                }
            ]
        elif fails:
            product.reasons = [
                {
                    "position": "main images",
                    "reasons": ["The main image does not clearly show the product."],
                    "suggestions": ["Use a main image of the product on a plain background."],
                    "listing_platform": "TIKTOK_SHOP",
                }
            ]

    def settled(self, product: Product) -> Product:
        product.settle(time.time())
        return product

    def duplicates(self) -> list[dict[str, Any]]:
        """Seller SKUs carried by more than one product that is not deleted or refused."""
        by_sku: dict[str, list[str]] = collections.defaultdict(list)
        for product in self.products.values():
            if self.settled(product).status in ("DELETED", "FAILED"):
                continue
            for sku in set(product.seller_skus()):
                if sku:
                    by_sku[sku].append(product.id)
        return [
            {"shop_id": self.settings.shop_id, "marker": sku, "product_ids": ids}
            for sku, ids in by_sku.items()
            if len(ids) > 1
        ]

    def books(self) -> dict[str, Any]:
        products = [self.settled(p) for p in self.products.values()]
        return {
            "shops": {
                self.settings.shop_id: {
                    "products": [
                        {
                            "product_id": p.id,
                            "status": p.status,
                            "title": p.body.get("title"),
                            "seller_skus": p.seller_skus(),
                            "category_id": p.body.get("category_id"),
                            "images": len(p.body.get("main_images") or []),
                            # Each SKU's price as buyers see it, by seller SKU.
                            "prices": {
                                str(s.get("seller_sku") or ""): (s.get("price") or {}).get("amount")
                                for s in p.body.get("skus") or []
                            },
                        }
                        for p in products
                    ]
                }
            },
            "created": self.counts["created"],
            "edited": self.counts["edited"],
            "deactivated": self.counts["deactivated"],
            "reactivated": self.counts["reactivated"],
            "deleted": self.counts["deleted"],
            "price_updates": self.counts["price_updates"],
            "activated": sum(1 for p in products if p.status == "ACTIVATE"),
            "failed_audit": sum(1 for p in products if p.status == "FAILED"),
            "images_uploaded": self.counts["images_uploaded"],
            "requests": self.counts["requests"],
            "refused": {k[8:]: v for k, v in self.counts.items() if k.startswith("refused:")},
            "rate_limited": self.counts["rate_limited"],
            "tokens_issued": self.counts["tokens_issued"],
            "refreshes_refused": self.counts["refreshes_refused"],
            "duplicates": self.duplicates(),
        }
