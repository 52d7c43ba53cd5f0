"""The direct sales channels come from one list (shared.contract.sales_channels.DIRECT_CHANNELS):
every table that names them is derived from it, so a new channel is its adapter module, its
simulator (and its entry in devstack/channel_sims.py), one entry in that list and its compose
settings."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from typing import Any

import pytest
from pydantic import ValidationError

from devstack import k8s
from devstack.channel_sims import (
    CHANNEL_SIMULATORS,
    ChannelSimulator,
    channel_simulator,
    simulator_env,
)
from devstack.stack import StackSettings, sim_port_setting
from services.publisher.settings import PublisherSettings
from shared.adapters.vendors.channels import ChannelSpec
from shared.adapters.vendors.direct import (
    DIRECT_CHANNELS,
    direct_channel,
    direct_spec,
    direct_specs,
)
from shared.adapters.vendors.shopify import ShopifySettings
from shared.contract.events import CHANNEL_NAME_PATTERN
from shared.contract.topics import CHANNELS, DEFAULT_CHANNEL, PUBLISHERS, STAGES, all_topics
from shared.platform.errors import ConfigError
from simulators.process import DEFAULT_PORTS
from tests.test_compose import ROOT

pytestmark = pytest.mark.unit

NAMES = list(DIRECT_CHANNELS)
# The channel tests/support/fake_channel.py registers (not imported here: its settings class
# would join the PodSettings subclasses that the environment-name checks read).
FAKE, FAKE_PORT = "fakemarket", 8199
# The ledger's check constraint on side_effects.step (shared/adapters/migrations/0016_channels.sql).
LEDGER_STEP = re.compile(r"^publish:[a-z][a-z0-9_]*$")


def test_every_derived_list_names_the_registered_channels() -> None:
    assert NAMES == ["shopify", "etsy", "tiktok", "meta"]
    assert (DEFAULT_CHANNEL, *NAMES) == CHANNELS
    topics = {t.name for t in all_topics()}
    stack_fields = set(StackSettings.model_fields)
    for spec in direct_specs():
        stage = PUBLISHERS[spec.name]
        assert (stage.name, stage.family, stage.channel) == (
            f"publisher_{spec.name}",
            f"publish.{spec.name}",
            spec.name,
        )
        assert STAGES[stage.name] is stage
        assert {stage.dlq, *stage.retry_topics} <= topics
        assert PublisherSettings(channel=spec.name, printify_api_key="k").channel == spec.name
        assert LEDGER_STEP.match(f"publish:{spec.name}")
        sim = channel_simulator(spec.name)
        assert DEFAULT_PORTS[sim.module] == sim.port
        assert (ROOT / "simulators" / sim.module / "__main__.py").exists()
        assert {sim_port_setting(sim.module), spec.credential.lower()} <= stack_fields
        assert StackSettings.model_fields[sim_port_setting(sim.module)].default == sim.port
        assert simulator_env(spec, "http://sim")[spec.url_setting] == "http://sim"
        assert spec.settings in k8s.settings_of("services.publisher", spec.name)
    # The dev stack's table lists the registered channels' simulators, and nothing else.
    assert list(CHANNEL_SIMULATORS) == NAMES
    # One port per simulator, fixed and direct channels' alike.
    assert len(set(DEFAULT_PORTS.values())) == len(DEFAULT_PORTS)
    components = {f for f in k8s.render() if f.startswith("channels/")}
    assert components == {
        f"channels/{n}/{f}" for n in NAMES for f in ("kustomization.yaml", "publisher.yaml")
    }


def test_the_same_ports_env_names_and_simulator_settings_as_before_the_registry() -> None:
    settings = StackSettings()
    assert settings.simulator_port("shopify") == 8191
    assert settings.simulator_port("etsy") == 8192
    assert {"shopify_access_token", "etsy_access_token"} <= set(StackSettings.model_fields)
    shopify, etsy, *_ = direct_specs()
    shopify_sim, etsy_sim = CHANNEL_SIMULATORS["shopify"], CHANNEL_SIMULATORS["etsy"]
    assert shopify_sim.env == {
        "SHOPIFY_SHOP_DOMAIN": "pod-engine-sim.myshopify.com",
        "SHOPIFY_ACCESS_TOKEN": "sim-shopify-token",
    }
    assert (shopify.credential, shopify.url_setting) == ("SHOPIFY_ACCESS_TOKEN", "SHOPIFY_API_URL")
    # Etsy's account is its refresh token now (an access token alone lasts an hour).
    assert (etsy.credential, etsy.url_setting) == ("ETSY_REFRESH_TOKEN", "ETSY_API_URL")
    assert etsy.other_credentials == ("ETSY_ACCESS_TOKEN",)
    assert etsy_sim.env["ETSY_SHOP_ID"] == "51234567"
    from simulators.shopify import DEFAULT_SHOP

    assert shopify_sim.env["SHOPIFY_SHOP_DOMAIN"] == DEFAULT_SHOP


def test_compose_runs_each_registered_simulator_and_configures_its_channel() -> None:
    from tests.test_compose import DB_PASSWORDS, SIMULATORS_ENV, active, env_file

    plain = active(DB_PASSWORDS)
    simulated = active({**env_file(SIMULATORS_ENV), **DB_PASSWORDS})
    for spec in direct_specs():
        table = channel_simulator(spec.name)
        # Its simulator runs only under the simulators profile.
        assert f"sim-{table.module}" not in plain
        sim = simulated[f"sim-{table.module}"]
        assert sim["command"][2] == f"simulators.{table.module}"
        assert sim["command"][-1] == str(table.port)
        workers = simulated["workers"]["environment"]
        assert workers[spec.url_setting] == f"http://sim-{table.module}:{table.port}"
        # With the simulators, the channel's settings are the simulator's, as under make up;
        # without, each is passed through from .env and none is the simulator's.
        for name, value in table.env.items():
            assert workers[name] == value
            assert plain["workers"]["environment"][name] != value


def test_an_unregistered_channel_is_refused_by_name() -> None:
    with pytest.raises(ValidationError):
        PublisherSettings(channel=FAKE, printify_api_key="k")
    with pytest.raises(
        ConfigError, match=f"no direct adapter for '{FAKE}' \\(have: {', '.join(NAMES)}\\)"
    ):
        direct_spec(FAKE)


def test_the_publisher_builds_the_registered_adapter_from_its_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    shopify = direct_spec("shopify")
    for name, value in CHANNEL_SIMULATORS["shopify"].env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv(shopify.url_setting, "http://127.0.0.1:1")
    channel = direct_channel("shopify", None)  # type: ignore[arg-type]  # not called here
    assert channel.name == "shopify"
    monkeypatch.delenv("SHOPIFY_ACCESS_TOKEN")
    with pytest.raises(ConfigError, match="SHOPIFY_ACCESS_TOKEN"):
        direct_channel("shopify", None)  # type: ignore[arg-type]


def test_a_spec_names_settings_its_adapter_reads() -> None:
    def spec(**overrides: Any) -> ChannelSpec[ShopifySettings]:
        fields: dict[str, Any] = {
            "name": "shop2",
            "settings": ShopifySettings,
            "build": direct_spec("shopify").build,
            "credential": "SHOPIFY_ACCESS_TOKEN",
            "url_setting": "SHOPIFY_API_URL",
        }
        return ChannelSpec(**{**fields, **overrides})

    assert spec().name == "shop2"
    with pytest.raises(ValueError, match="SHOPIFY_TOKEN"):
        spec(credential="SHOPIFY_TOKEN")
    with pytest.raises(ValueError, match="SHOP2_URL"):
        spec(url_setting="SHOP2_URL")
    for bad in ("Shop", "shop-2", "2shop", "s" * 31):
        with pytest.raises(ValueError, match=re.escape(CHANNEL_NAME_PATTERN)):
            spec(name=bad)


def test_a_simulator_names_settings_its_channel_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    """The dev stack's table of channel simulators: what it gives a publisher must be among the
    channel's settings, and a channel without an entry is refused by name."""
    shopify = direct_spec("shopify")
    env = simulator_env(shopify, "http://sim:1")
    assert env == {**CHANNEL_SIMULATORS["shopify"].env, "SHOPIFY_API_URL": "http://sim:1"}
    wrong = ChannelSimulator("shopify", 8191, {"SHOP2_URL": "x"})
    monkeypatch.setitem(CHANNEL_SIMULATORS, "shopify", wrong)
    with pytest.raises(ConfigError, match="SHOP2_URL not among the settings of ShopifySettings"):
        simulator_env(shopify, "http://sim:1")
    with pytest.raises(ConfigError, match=f"no simulator for the direct channel '{FAKE}'"):
        channel_simulator(FAKE)


def test_a_new_channel_reaches_every_derived_table_without_editing_them() -> None:
    """One more entry in DIRECT_CHANNELS (tests/support/fake_channel.py, in a process of its
    own) is a channel, a publisher stage with its topics, a ledger step, a simulator port,
    ``make up`` settings and simulator start, and a deploy/k8s component."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FAKEMARKET_", "SIM_FAKE"))}
    run = subprocess.run(
        [sys.executable, "-m", "tests.support.fake_channel"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    got = json.loads(run.stdout)
    name, port = FAKE, FAKE_PORT

    assert got["channels"] == [*CHANNELS, name]
    stage = f"publisher_{name}"
    assert got["stage"] == {
        "name": stage,
        "inputs": ["products.created", "seller.decisions"],
        "family": f"publish.{name}",
        "module": "services.publisher",
        "channel": name,
    }
    assert got["stages"] == [*list(STAGES)[:-1], stage, "monitor"]
    assert stage in got["stage_names"]  # the API's /scale, /workers, /stats
    assert stage not in got["stages_for_default"]  # runs only where PUBLISH_CHANNELS names it
    family = [f"publish.{name}.retry.{n}" for n in (1, 2, 3)] + [f"publish.{name}.dlq"]
    assert set(family) <= set(got["topics"])
    assert set(family) <= set(got["monitor_inputs"])
    assert set(family) <= set(got["asyncapi_addresses"])
    assert got["publisher_channel"] == name
    assert got["ledger_step"] == f"publish:{name}" and LEDGER_STEP.match(got["ledger_step"])
    assert got["built"] == ["FakeMarketChannel", name]
    # pod doctor runs the channel's own checks (its module bears the channel's name).
    assert got["doctor_sources"][-1] == f"shared.tools.doctor.{name}"

    # make up: SIM_FAKEMARKET_PORT and FAKEMARKET_TOKEN are its settings; without a token the
    # simulator is started and the publisher gets its settings and URL.
    assert got["simulator_port"] == port
    assert {f"sim_{name}_port", f"{name}_token", f"worker_count_{stage}"} <= set(
        got["stack_fields"]
    )
    sim_env = {"FAKEMARKET_TOKEN": "sim-token", "FAKEMARKET_SHOP": "sim-shop"}
    assert got["make_up"] == [
        {**sim_env, "FAKEMARKET_API_URL": f"http://127.0.0.1:{port}"},
        [[name, port]],
    ]
    assert got["make_up_on_port"] == [
        {**sim_env, "FAKEMARKET_API_URL": "http://127.0.0.1:18199"},
        [[name, 18199]],
    ]
    assert got["make_up_with_token"] == [{}, []]

    # deploy/k8s: a component with the publisher, its secrets by reference, scaled on its group.
    assert {f"channels/{name}/kustomization.yaml", f"channels/{name}/publisher.yaml"} <= set(
        got["k8s_files"]
    )
    deployment, scaled = got["k8s_publisher"]
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    env_of = {e["name"]: e for e in container["env"]}
    assert env_of["CHANNEL"]["value"] == name
    assert env_of["FAKEMARKET_TOKEN"]["valueFrom"]["secretKeyRef"] == {
        "name": "pod-secrets",
        "key": "FAKEMARKET_TOKEN",
    }
    assert scaled["spec"]["triggers"][0]["metadata"]["consumerGroup"] == f"pod.{stage}"
