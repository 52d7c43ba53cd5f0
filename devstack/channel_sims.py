"""Each direct sales channel's simulator, as ``make up``, compose and the tests run it.

Dev-stack knowledge, keyed by the channel's name
(:data:`shared.contract.sales_channels.DIRECT_CHANNELS`): the engine's
:class:`~shared.adapters.vendors.channels.ChannelSpec` says which settings make an account of one's
own (``credential``) and where the vendor is (``url_setting``); this table says which simulator
stands in when there is none, its default port (``SIM_<SIMULATOR>_PORT`` under ``make up``) and the
settings the publisher is given to use it. ``shared`` never imports it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from shared.platform.errors import ConfigError

if TYPE_CHECKING:
    from shared.adapters.vendors.channels import ChannelSpec


@dataclass(frozen=True)
class ChannelSimulator:
    """A direct channel's simulator: ``python -m simulators.<module>`` on ``port``."""

    module: str
    port: int
    # What the publisher is configured with to use it (with the simulator's URL as the spec's
    # url_setting); each name must be one of the channel's settings.
    env: Mapping[str, str] = field(default_factory=dict)


# The simulator's shop owner's refresh token: the simulator takes a refresh token it has not
# seen as one it issued (a grant made before it started), then rotates it as Etsy does. Etsy's
# tokens start with the user's numeric id.
SIM_ETSY_REFRESH_TOKEN = "1.sim-etsy-refresh-token"  # noqa: S105  # the simulator's, not a secret

CHANNEL_SIMULATORS: dict[str, ChannelSimulator] = {
    # The simulator's shop (its DEFAULT_SHOP; any admin token is accepted unless
    # SIM_SHOPIFY_TOKENS lists the valid ones).
    "shopify": ChannelSimulator(
        "shopify",
        8191,
        {
            "SHOPIFY_SHOP_DOMAIN": "pod-engine-sim.myshopify.com",
            "SHOPIFY_ACCESS_TOKEN": "sim-shopify-token",
        },
    ),
    # The simulator's app and shop (any keystring:secret is accepted unless SIM_ETSY_API_KEYS
    # restricts them).
    "etsy": ChannelSimulator(
        "etsy",
        8192,
        {
            "ETSY_API_KEY": "sim-etsy-keystring",
            "ETSY_SHARED_SECRET": "sim-etsy-secret",
            "ETSY_REFRESH_TOKEN": SIM_ETSY_REFRESH_TOKEN,
            "ETSY_SHOP_ID": "51234567",
            "ETSY_SHIPPING_PROFILE_ID": "9001",
        },
    ),
    # The simulator's app (its signatures are checked with this secret) and a refresh token it
    # knows from the start, rotated at each renewal; the shop's cipher is read from it.
    "tiktok": ChannelSimulator(
        "tiktok",
        8193,
        {
            "TIKTOK_APP_KEY": "sim-tiktok-app-key",
            "TIKTOK_APP_SECRET": "sim-tiktok-app-secret",
            "TIKTOK_REFRESH_TOKEN": "sim-tiktok-refresh-token",
        },
    ),
    # The simulator's business, catalog, app secret and system user's token (its defaults:
    # simulators/meta/settings.py).
    "meta": ChannelSimulator(
        "meta",
        8194,
        {
            "META_ACCESS_TOKEN": "sim-meta-system-user-token",
            "META_APP_SECRET": "sim-meta-app-secret",
            "META_CATALOG_ID": "1234567890123456",
            "META_BUSINESS_ID": "987654321098765",
        },
    ),
}


def channel_simulator(channel: str) -> ChannelSimulator:
    """The simulator of the direct channel ``channel``; ConfigError naming it when none is
    listed (a channel registered without its entry here)."""
    found = CHANNEL_SIMULATORS.get(channel)
    if found is None:
        raise ConfigError(
            f"no simulator for the direct channel {channel!r}: add it to "
            "devstack/channel_sims.py CHANNEL_SIMULATORS"
        )
    return found


def simulator_env(spec: ChannelSpec[Any], url: str) -> dict[str, str]:
    """The settings that point ``spec``'s publisher at its simulator listening at ``url``;
    ConfigError when the table names a setting the channel does not have."""
    sim = channel_simulator(spec.name)
    fields = {f.upper() for f in spec.settings.model_fields}
    unknown = [name for name in sim.env if name not in fields]
    if unknown:
        raise ConfigError(
            f"devstack/channel_sims.py: channel {spec.name!r}: {', '.join(unknown)} not among "
            f"the settings of {spec.settings.__name__}"
        )
    return {**sim.env, spec.url_setting: url}
