"""The simulator's state as the routes get it: one :class:`EtsySim` built by ``create_app``
and handed to each handler through a typed dependency, and the token's user the middleware
found."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from simulators.contracts.etsy import contract
from simulators.contracts.openapi import OpenApiContract
from simulators.etsy.errors import Invalid
from simulators.etsy.oauth import OAuth
from simulators.etsy.settings import EtsySettings
from simulators.etsy.state import EtsyState, Limits, Listing
from simulators.etsy.validation import positive_id


@dataclass
class EtsySim:
    """Everything the simulator holds, and what ``/_sim/reset`` returns it to."""

    state: EtsyState
    oauth: OAuth
    checker: OpenApiContract
    limits: Limits
    defaults: Limits
    # The accepted ``x-api-key`` values; None accepts any well-formed one.
    allowed: set[str] | None

    @classmethod
    def of(cls, settings: EtsySettings) -> EtsySim:
        return cls(
            state=EtsyState(default_shop=settings.shop_id),
            oauth=settings.oauth(),
            checker=contract(),
            limits=Limits(settings.qps, settings.qpd, settings.day_s),
            defaults=Limits(settings.qps, settings.qpd, settings.day_s),
            allowed=settings.allowed_keys(),
        )

    def reset(self) -> None:
        self.state.reset()
        self.oauth.reset()
        self.limits.update(self.defaults.as_dict())

    def listing(self, listing_id: str, shop_id: str | None = None) -> Listing:
        """A listing by the path's id (in the path's shop); LookupError names what is missing."""
        lid = positive_id(listing_id, "listing_id")
        listing = self.state.listings.get(lid)
        if listing is None:
            raise LookupError(f"Listing {lid}")
        if shop_id is not None and listing.shop_id != positive_id(shop_id, "shop_id"):
            raise LookupError(f"Listing {lid} in shop {shop_id}")
        return listing


def app_key(keystring: str) -> str:
    """How the books name an app: a hash of its keystring (never the key itself)."""
    return hashlib.sha256(keystring.encode()).hexdigest()[:12]


async def get_sim(request: Request) -> EtsySim:
    sim: EtsySim = request.app.state.sim
    return sim


Sim = Annotated[EtsySim, Depends(get_sim)]


async def get_user(request: Request) -> int | None:
    """The token's user (None without a token: the operations Etsy's document serves on the
    API key alone)."""
    user: int | None = getattr(request.state, "etsy_user", None)
    return user


User = Annotated[int | None, Depends(get_user)]


def owner(user: int | None) -> int:
    """The token's user, for an operation that acts as the shop's owner."""
    if user is None:  # the contract asks every operation that needs an owner for a token
        raise Invalid("this operation needs the shop owner's OAuth token")
    return user
