"""Sales channels the engine lists on directly (not through a Printify shop), by their specs.

The list itself is :data:`shared.contract.sales_channels.DIRECT_CHANNELS` (plain data). Each is
declared by its adapter module as a :class:`~shared.adapters.vendors.channels.ChannelSpec`
(``SPEC`` in ``shared/adapters/vendors/<name>.py``): built from its own settings (``SHOPIFY_*``,
``ETSY_*``), it lists the products Printify made, read through the Printify client it is given.
The publisher of channel ``<name>`` (its own consumer group, ``CHANNEL=<name>``) uses the one
registered here, and everything else that names the channels is derived from this list: the
channels, publisher stages and their topics (:mod:`shared.contract.topics`), the ledger's
``publish:<name>`` steps, ``make up`` and ``deploy/k8s``.

The entries name where each spec is declared rather than import it: :mod:`shared.contract.topics`
needs only the names, and every process (``pod``, ``shared.tools.init``) imports it, while an
adapter brings its HTTP stack along. A spec is imported when something asks for it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from shared.contract.sales_channels import DIRECT_CHANNELS
from shared.platform.errors import ConfigError

if TYPE_CHECKING:
    from psycopg_pool import AsyncConnectionPool

    from shared.adapters.vendors.channels import ChannelSpec, SalesChannel
    from shared.adapters.vendors.printify import PrintifyClient

__all__ = ["DIRECT_CHANNELS", "direct_channel", "direct_spec", "direct_specs"]


def direct_spec(name: str) -> ChannelSpec[Any]:
    """The registered channel ``name``; ConfigError when there is none."""
    path = DIRECT_CHANNELS.get(name)
    if path is None:
        have = ", ".join(DIRECT_CHANNELS)
        raise ConfigError(f"CHANNEL: no direct adapter for {name!r} (have: {have})")
    module, _, attribute = path.partition(":")
    spec: ChannelSpec[Any] = getattr(importlib.import_module(module), attribute)
    if spec.name != name:
        raise ConfigError(f"{path} declares channel {spec.name!r}, registered as {name!r}")
    return spec


def direct_specs() -> tuple[ChannelSpec[Any], ...]:
    """Every registered channel's spec, in the registry's order."""
    return tuple(direct_spec(name) for name in DIRECT_CHANNELS)


def direct_channel(
    name: str, source: PrintifyClient, pool: AsyncConnectionPool | None = None
) -> SalesChannel:
    """The channel ``name``, configured from the environment (``pool``: the database, for its
    shared budgets); ConfigError when unknown."""
    return direct_spec(name).channel(source, pool)
