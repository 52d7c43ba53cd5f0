"""Which of the account's Printify shops the products go to."""

from __future__ import annotations

from typing import Protocol

from shared.adapters.vendors.printify.models import Shop
from shared.platform.errors import ConfigError


class ShopLister(Protocol):
    """What :func:`choose_shop` needs of a client."""

    async def list_shops(self) -> list[Shop]: ...


async def choose_shop(client: ShopLister, configured: str | None) -> Shop:
    """The shop products go to: ``configured`` (PRINTIFY_SHOP_ID), or the account's only shop.

    Raises :class:`~shared.platform.errors.ConfigError` listing the account's shops when the
    configured one is not among them, or when there are several and none is configured (the first
    one could be the Etsy shop when the seller meant the custom one)."""
    configured = (configured or "").strip() or None  # compose passes an unset one as ""
    shops = await client.list_shops()
    listing = "; ".join(f"{s.id} ({s.title}, {s.sales_channel})" for s in shops)
    if configured is not None:
        found = next((s for s in shops if str(s.id) == str(configured)), None)
        if found is None:
            raise ConfigError(
                f"PRINTIFY_SHOP_ID: {configured} is not a shop of this account; "
                f"its shops: {listing or 'none'}"
            )
        return found
    if not shops:
        raise ConfigError("PRINTIFY_API_KEY: the account has no shop; connect one in Printify")
    if len(shops) > 1:
        raise ConfigError(
            f"PRINTIFY_SHOP_ID: the account has {len(shops)} shops, set the one to use: {listing}"
        )
    return shops[0]
