"""Sales channels the engine lists on directly (not through a Printify shop), by name.

Each is built from its own settings (``SHOPIFY_*``, ``ETSY_*``) and lists the products Printify
made, read through the Printify client it is given. The publisher of channel ``<name>`` (its
own consumer group, ``CHANNEL=<name>``) uses the one registered here; a new channel is one
adapter module and one entry.
"""

from __future__ import annotations

from collections.abc import Callable

from shared.errors import ConfigError
from shared.settings import load_settings
from shared.vendors.channels import SalesChannel
from shared.vendors.etsy import EtsySettings, etsy_channel
from shared.vendors.printify import PrintifyClient
from shared.vendors.shopify import ShopifySettings, shopify_channel

DirectFactory = Callable[[PrintifyClient], SalesChannel]


def _shopify(source: PrintifyClient) -> SalesChannel:
    return shopify_channel(load_settings(ShopifySettings), source)


def _etsy(source: PrintifyClient) -> SalesChannel:
    return etsy_channel(load_settings(EtsySettings), source)


DIRECT_CHANNELS: dict[str, DirectFactory] = {"shopify": _shopify, "etsy": _etsy}


def direct_channel(name: str, source: PrintifyClient) -> SalesChannel:
    """The channel ``name``, configured from the environment; ConfigError when unknown."""
    factory = DIRECT_CHANNELS.get(name)
    if factory is None:
        raise ConfigError(
            f"CHANNEL: no direct adapter for {name!r} (have: {', '.join(DIRECT_CHANNELS)})"
        )
    return factory(source)
