"""Sales channels the engine lists on directly (not through a Printify shop): the one list.

Each is declared by its adapter module as a :class:`~shared.vendors.channels.ChannelSpec`
(``SPEC`` in ``shared/vendors/<name>.py``): built from its own settings (``SHOPIFY_*``,
``ETSY_*``), it lists the products Printify made, read through the Printify client it is given.
The publisher of channel ``<name>`` (its own consumer group, ``CHANNEL=<name>``) uses the one
registered here, and everything else that names the channels is derived from this list: the
channels, publisher stages and their topics (:mod:`shared.topics`), the ledger's
``publish:<name>`` steps, the simulators' default ports, ``make up`` and ``deploy/k8s``.

A new direct channel: its adapter module declaring ``SPEC``, its simulator
(``simulators/<name>.py``), one entry below, and its settings in compose.yaml.
"""

from __future__ import annotations

from typing import Any

from shared.errors import ConfigError
from shared.vendors import etsy, shopify
from shared.vendors.channels import ChannelSpec, SalesChannel
from shared.vendors.printify import PrintifyClient

DIRECT_CHANNELS: tuple[ChannelSpec[Any], ...] = (
    shopify.SPEC,
    etsy.SPEC,
)


def direct_spec(name: str) -> ChannelSpec[Any]:
    """The registered channel ``name``; ConfigError when there is none."""
    for spec in DIRECT_CHANNELS:
        if spec.name == name:
            return spec
    have = ", ".join(s.name for s in DIRECT_CHANNELS)
    raise ConfigError(f"CHANNEL: no direct adapter for {name!r} (have: {have})")


def direct_channel(name: str, source: PrintifyClient) -> SalesChannel:
    """The channel ``name``, configured from the environment; ConfigError when unknown."""
    return direct_spec(name).channel(source)
