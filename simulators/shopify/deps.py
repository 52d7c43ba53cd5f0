"""The simulator's state as the routes get it: one :class:`ShopifySim` built by
``create_app`` and handed to each handler through a typed dependency."""

from __future__ import annotations

import collections
import hmac
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import Depends, Request
from graphql import GraphQLSchema, build_schema

from shared.adapters.vendors.shopify_contract import API_VERSION
from simulators.common.control import Json, as_float
from simulators.contracts.shopify import load_scopes, sdl_path
from simulators.shopify.access import Requirements, scope_set
from simulators.shopify.settings import DEFAULT_SCOPES, ShopifySettings
from simulators.shopify.state import DEFAULT_SHOP, App, Bucket, Issued, Store


@dataclass
class ShopifySim:
    """Everything the simulator holds: the schema it validates against, the app, the tokens
    it issued, the shops, and what ``/_sim/reset`` returns it to."""

    settings: ShopifySettings
    schema: GraphQLSchema
    guard: Callable[..., Any]
    limits: dict[str, float]
    app: App
    # The scopes of tokens it did not issue (legacy admin tokens).
    static_scopes: frozenset[str]
    stores: dict[str, Store] = field(default_factory=dict)
    issued: dict[str, Issued] = field(default_factory=dict)
    grants: collections.Counter[str] = field(default_factory=collections.Counter)

    @classmethod
    def of(cls, settings: ShopifySettings) -> ShopifySim:
        requirements = Requirements(load_scopes(API_VERSION)["requirements"])
        return cls(
            settings=settings,
            schema=build_schema(sdl_path(API_VERSION).read_text()),
            guard=requirements.guard(),
            limits={"bucket": settings.bucket, "restore_rate": settings.restore_rate},
            app=cls.default_app(settings),
            static_scopes=cls.shop_scopes(settings),
        )

    @staticmethod
    def shop_scopes(settings: ShopifySettings) -> frozenset[str]:
        return scope_set(settings.scopes or DEFAULT_SCOPES)

    @classmethod
    def default_app(cls, settings: ShopifySettings) -> App:
        return App(
            client_id=settings.client_id,
            client_secret=settings.client_secret,
            scopes=cls.shop_scopes(settings),
            token_ttl_s=settings.token_ttl_s,
        )

    @property
    def media_s(self) -> float:
        return self.settings.media_ms / 1000

    def reset(self) -> None:
        self.stores.clear()
        self.issued.clear()
        self.grants.clear()
        self.app = self.default_app(self.settings)
        self.static_scopes = self.shop_scopes(self.settings)

    def new_bucket(self) -> Bucket:
        size = self.limits["bucket"]
        return Bucket(size, self.limits["restore_rate"], size)

    def set_limits(self, values: Json) -> None:
        """Change the bucket's size and restore rate; every shop's bucket starts full."""
        for key in ("bucket", "restore_rate"):
            if key in values:
                self.limits[key] = as_float(values[key])
        for store in self.stores.values():
            store.bucket = self.new_bucket()

    def store(self, domain: str | None) -> Store:
        """The shop a request is for: its host's, unless the simulator serves a fixed one."""
        name = self.settings.shop or (
            domain if domain and domain.endswith(".myshopify.com") else DEFAULT_SHOP
        )
        if name not in self.stores:
            self.stores[name] = Store(name, self.new_bucket())
        return self.stores[name]

    def scopes_of(self, token: str | None) -> frozenset[str] | None:
        """The scopes a token carries; None when Shopify would refuse it (401)."""
        if not token:
            return None
        found = self.issued.get(token)
        if found is not None:
            alive = time.monotonic() < found.expires_at
            if alive and self.app.installed and found.client_id == self.app.client_id:
                return found.scopes
            return None
        static = scope_set(self.settings.tokens)
        if static and not any(hmac.compare_digest(token, t) for t in static):
            return None
        return self.static_scopes


async def get_sim(request: Request) -> ShopifySim:
    sim: ShopifySim = request.app.state.sim
    return sim


Sim = Annotated[ShopifySim, Depends(get_sim)]


def store_of(request: Request, sim: ShopifySim) -> Store:
    """The shop the request is for (made on first use: called only once the request is
    accepted, so refused ones leave no shop in the books)."""
    host = (request.headers.get("host") or "").split(":")[0]
    return sim.store(host)
