"""The sales channels by name, as plain data: the default one and the direct ones.

"printify" publishes through the Printify shop's own channel; each direct channel lists on its
own, through the adapter whose :class:`~shared.adapters.vendors.channels.ChannelSpec` is named here
as ``module:attribute``. The names are all the topic registry (:mod:`shared.contract.topics`) and
the settings need; the spec (and the HTTP stack its adapter brings along) is imported only when
something asks for it (:mod:`shared.adapters.vendors.direct`). This module imports nothing of the
engine's, so that every layer may read it without a dependency cycle.

A new direct channel: its adapter module declaring ``SPEC``, its simulator (``simulators/``,
and its row in the dev stack's table of channel simulators), one entry below, and its settings
in compose.yaml.
"""

from __future__ import annotations

DEFAULT_CHANNEL = "printify"

# Channel name -> ``module:attribute`` of its ChannelSpec. A test registers one more by adding
# to this dict before shared.contract.topics (which derives the stages from it) is imported.
DIRECT_CHANNELS: dict[str, str] = {
    "shopify": "shared.adapters.vendors.shopify:SPEC",
    "etsy": "shared.adapters.vendors.etsy:SPEC",
    "tiktok": "shared.adapters.vendors.tiktok:SPEC",
    "meta": "shared.adapters.vendors.meta:SPEC",
}


def channel_names() -> tuple[str, ...]:
    """Every channel's name, the default first, as registered now."""
    return (DEFAULT_CHANNEL, *DIRECT_CHANNELS)
