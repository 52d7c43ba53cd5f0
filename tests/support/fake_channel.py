"""A direct sales channel that exists only here, registered the way a new one is (one more entry
in ``shared.contract.sales_channels.DIRECT_CHANNELS``, and its simulator in the dev stack's table),
and what the engine derives from the registry once it is there: run as
``python -m tests.support.fake_channel``, it prints that as JSON.

It runs in a process of its own because the registry is read when ``shared.contract.topics`` is
first imported: the entry has to be there before, and must not leak into other tests.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any, cast
from unittest.mock import patch

from pydantic import SecretStr

from devstack.channel_sims import CHANNEL_SIMULATORS, ChannelSimulator
from shared.adapters.vendors.channels import (
    PENDING,
    ChannelSpec,
    ListingState,
    ProductRef,
    UndoNotSupported,
)
from shared.adapters.vendors.printify import PrintifyClient
from shared.platform.settings import PodSettings

NAME = "fakemarket"
PORT = 8199


class FakeMarketSettings(PodSettings):
    """One FakeMarket shop (``FAKEMARKET_*``)."""

    fakemarket_api_url: str = "https://api.fakemarket.example"
    fakemarket_token: SecretStr
    fakemarket_shop: str


class FakeMarketChannel(UndoNotSupported):
    """A channel that never lists anything (what it does is not the point here)."""

    name = NAME

    def __init__(self, settings: FakeMarketSettings, source: PrintifyClient) -> None:
        self.settings = settings
        self.source = source

    async def publish(self, product: ProductRef) -> ListingState:
        return PENDING

    async def reconcile(self, product: ProductRef) -> ListingState | None:
        return None

    async def check(self, product: ProductRef) -> ListingState:
        return PENDING


SPEC = ChannelSpec(
    name=NAME,
    settings=FakeMarketSettings,
    build=FakeMarketChannel,
    credential="FAKEMARKET_TOKEN",
    url_setting="FAKEMARKET_API_URL",
)


def register() -> None:
    """Add :data:`SPEC` to the registry, before anything has derived a table from it."""
    import shared.contract.sales_channels as sales_channels

    if "shared.contract.topics" in sys.modules:
        raise RuntimeError("shared.contract.topics was imported before the channel was registered")
    sales_channels.DIRECT_CHANNELS[NAME] = "tests.support.fake_channel:SPEC"
    CHANNEL_SIMULATORS[NAME] = ChannelSimulator(
        NAME, PORT, {"FAKEMARKET_TOKEN": "sim-token", "FAKEMARKET_SHOP": "sim-shop"}
    )


def derived() -> dict[str, Any]:
    """What the engine makes of the registry, channel by channel where it names them."""
    from devstack import k8s
    from devstack.stack import Stack, StackSettings
    from services.publisher.settings import PublisherSettings
    from services.publisher.watch import publish_key
    from shared.adapters.vendors.direct import direct_channel
    from shared.contract import topics
    from shared.pipeline.asyncapi import render_asyncapi
    from simulators.process import DEFAULT_PORTS, SimulatorProcess
    from tests.support.events import product
    from tests.support.kafka import job

    stage = topics.PUBLISHERS[NAME]
    out: dict[str, Any] = {
        "channels": list(topics.CHANNELS),
        "stage": {
            "name": stage.name,
            "inputs": list(stage.inputs),
            "family": stage.family,
            "module": stage.module,
            "channel": stage.channel,
        },
        "stages": list(topics.STAGES),
        "stage_names": [s.value for s in topics.StageName],
        "stages_for_default": topics.stages_for([topics.DEFAULT_CHANNEL]),
        "monitor_inputs": list(topics.MONITOR.inputs),
        "topics": [t.name for t in topics.all_topics()],
        "asyncapi_addresses": sorted(
            str(c.get("address")) for c in render_asyncapi()["channels"].values()
        ),
        "publisher_channel": PublisherSettings(channel=NAME, printify_api_key="k").channel,
        "ledger_step": publish_key(product(job("j-fake"), 0, "tshirt"), NAME).step,
        "simulator_port": DEFAULT_PORTS[NAME],
        "stack_fields": sorted(StackSettings.model_fields),
    }

    # The publisher builds the registered adapter from its settings.
    with patch.dict(os.environ, CHANNEL_SIMULATORS[NAME].env):
        built = direct_channel(NAME, cast(PrintifyClient, None))
    out["built"] = [type(built).__name__, built.name]

    # make up, selling on the channel: its simulator stands in unless it has a token of its own.
    def vendor_env(env: dict[str, str]) -> tuple[dict[str, str], list[tuple[str, int]]]:
        started: list[tuple[str, int]] = []

        def fake_simulator(name: str, port: int) -> SimulatorProcess:
            started.append((name, port))
            return SimulatorProcess(name, port)

        with tempfile.TemporaryDirectory() as state, patch.dict(os.environ, env):
            stack = Stack(
                StackSettings(
                    pod_state_dir=Path(state),
                    publish_channels=[topics.DEFAULT_CHANNEL, NAME],
                    claude_api_key="k",
                    comfyui_api_url="http://127.0.0.1:1",
                    printify_api_key="k",
                )
            )
            stack._simulator = fake_simulator  # type: ignore[method-assign]
            return stack.vendor_env(), started

    out["make_up"] = vendor_env({})
    out["make_up_on_port"] = vendor_env({"SIM_FAKEMARKET_PORT": "18199"})
    out["make_up_with_token"] = vendor_env({"FAKEMARKET_TOKEN": "mine"})

    from shared.tools.doctor import SOURCES

    out["doctor_sources"] = list(SOURCES)

    files = k8s.render()
    out["k8s_files"] = sorted(files)
    out["k8s_publisher"] = files.get(f"channels/{NAME}/publisher.yaml")
    return out


if __name__ == "__main__":
    register()
    json.dump(derived(), sys.stdout, default=str)
