"""``SIM_PROFILE=realistic``: each simulator is as slow as the vendor it plays
(:mod:`simulators.common.profile`), an asynchronous vendor stays asynchronous, and
``GET /_sim/requests`` records every stretch of vendor time a bench needs (requests, renders,
listings) from the vendor's side."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from shared.adapters.vendors.comfyui import DEFAULT_WORKFLOW
from simulators.common.profile import REALISTIC
from simulators.process import SimulatorProcess
from tests.simulators.test_printify_sim import PUBLISH, SHOP, client_for, product_body, upload
from tests.support.infra import free_port, wait_for

REALISTIC_ENV = {"SIM_PROFILE": "realistic", "SIM_LATENCY_MS": "", "SIM_SEED": "7"}

# How early a simulator's timed wait may end by the clocks the tests read (see below).
EARLY_S = 0.005


def entries(http: httpx.Client, since: float) -> list[dict[str, Any]]:
    resp = http.get("/_sim/requests", params={"since": since})
    resp.raise_for_status()
    return list(resp.json()["entries"])


def test_an_unknown_profile_stops_the_simulator_naming_it() -> None:
    proc = SimulatorProcess("shopify", free_port(), env={"SIM_PROFILE": "fastest"})
    with pytest.raises(RuntimeError, match="exited"):
        proc.start(timeout=30)


def test_a_claude_answer_takes_its_first_token_and_its_output_tokens() -> None:
    pace = REALISTIC["anthropic"]
    headers = {"x-api-key": "sk-ant-test-key", "anthropic-version": "2023-06-01"}
    body = {
        "model": "claude-sonnet-4-5",
        "max_tokens": 400,
        "messages": [{"role": "user", "content": "Write a listing for a retro sunset tee"}],
    }
    with (
        SimulatorProcess("anthropic", free_port(), env=REALISTIC_ENV) as proc,
        httpx.Client(base_url=proc.url, timeout=60, trust_env=False) as http,
    ):
        since = time.time()
        began = time.monotonic()
        resp = http.post("/v1/messages", json=body, headers=headers)
        took = time.monotonic() - began
        assert resp.status_code == 200, resp.text
        out = resp.json()["usage"]["output_tokens"]
        assert out > 0
        expected = pace.ttft_ms / 1000 + out / pace.output_tokens_per_s
        assert took >= expected
        [logged] = [e for e in entries(http, since) if e["what"] == "POST /v1/messages"]
        assert logged["kind"] == "http" and logged["status"] == 200
        assert logged["end"] - logged["start"] >= expected - EARLY_S
        # Bad input is refused as fast as Anthropic refuses it: no model time spent.
        began = time.monotonic()
        bad = http.post("/v1/messages", json={"model": "x"}, headers=headers)
        assert bad.status_code in (400, 404)
        assert time.monotonic() - began < pace.ttft_ms / 1000


@pytest.fixture(scope="module")
def comfy() -> Iterator[SimulatorProcess]:
    with SimulatorProcess("comfyui", free_port(), env=REALISTIC_ENV) as proc:
        yield proc


def workflow(size: int, steps: int) -> dict[str, Any]:
    """The engine's workflow sampled at ``size`` px for ``steps`` steps, upscaled by its model,
    then scaled back to ``size`` (a small PNG: this machine's CPU is not the GPU measured)."""
    wf: dict[str, Any] = json.loads(DEFAULT_WORKFLOW.read_text())
    wf["6"]["inputs"]["text"] = "a red fox"
    wf["3"]["inputs"]["steps"] = steps
    wf["5"]["inputs"]["width"] = wf["5"]["inputs"]["height"] = size
    wf["12"]["inputs"]["width"] = wf["12"]["inputs"]["height"] = size
    return wf


def render(http: httpx.Client, wf: dict[str, Any]) -> dict[str, Any]:
    """Submit ``wf`` and return its logged execution once it is in the history."""
    since = time.time()
    resp = http.post("/prompt", json={"prompt": wf})
    assert resp.status_code == 200, resp.text
    pid = resp.json()["prompt_id"]
    wait_for(lambda: bool(http.get(f"/history/{pid}").json()), 60, f"prompt {pid} executed")
    assert http.get(f"/history/{pid}").json()[pid]["status"]["status_str"] == "success"
    return next(e for e in entries(http, since) if e["kind"] == "work" and e["ref"] == pid)


@pytest.mark.parametrize(("size", "steps"), [(512, 20), (768, 10)])
def test_a_render_takes_its_steps_at_its_size_plus_the_upscale(
    comfy: SimulatorProcess, size: int, steps: int
) -> None:
    pace = REALISTIC["comfyui"]
    with httpx.Client(base_url=comfy.url, timeout=30, trust_env=False) as http:
        executed = render(http, workflow(size, steps))
    assert executed["what"] == "execute"
    sampling = steps * pace.step_ms / 1000 * size * size / (1024 * 1024)
    took = executed["end"] - executed["start"]
    # asyncio wakes a timer up to its clock's resolution early, and the log reads the wall
    # clock: a few milliseconds short of the model's time is still its pace.
    assert took >= sampling + pace.upscale_ms / 1000 - EARLY_S
    # A GPU's pace, not this machine's: well under twice the model's time at these sizes.
    assert took < 2 * (sampling + pace.upscale_ms / 1000) + 1


def test_comfyui_calls_take_a_lan_round_trip_and_are_logged(comfy: SimulatorProcess) -> None:
    with httpx.Client(base_url=comfy.url, timeout=30, trust_env=False) as http:
        since = time.time()
        assert http.get("/system_stats").status_code == 200
        [logged] = [e for e in entries(http, since) if e["what"] == "GET /system_stats"]
    assert logged["end"] - logged["start"] >= REALISTIC["comfyui"].call_ms / 1000


@pytest.fixture(scope="module")
def printify() -> Iterator[SimulatorProcess]:
    env = {**REALISTIC_ENV, "SIM_PRINTIFY_SHOPS": "custom_integration,etsy"}
    with SimulatorProcess("printify", free_port(), env=env) as proc:
        yield proc


def test_printify_calls_take_hundreds_of_milliseconds(printify: SimulatorProcess) -> None:
    call_s = REALISTIC["printify"].call_ms / 1000
    with client_for(printify) as http:
        since = time.time()
        began = time.monotonic()
        assert http.get("/v1/shops.json").status_code == 200
        assert time.monotonic() - began >= call_s
        [logged] = [e for e in entries(http, since) if e["what"] == "GET /v1/shops.json"]
    assert logged["end"] - logged["start"] >= call_s
    # The query string (it may hold a key) is never logged.
    assert "?" not in logged["what"]


def test_publishing_to_a_managed_channel_completes_minutes_later(
    printify: SimulatorProcess,
) -> None:
    etsy = SHOP + 1
    base = f"/v1/shops/{etsy}/products"
    with client_for(printify) as http:
        pid = http.post(f"{base}.json", json=product_body(upload(http)["id"])).json()["id"]
        since = time.time()
        assert http.post(f"{base}/{pid}/publish.json", json=PUBLISH).json() == {}
        # The call returned; the product is not listed, and will not be for minutes.
        product = http.get(f"{base}/{pid}.json").json()
        assert product["is_locked"] is True and product.get("external") is None
        [listing] = [e for e in entries(http, since) if e["kind"] == "work" and e["ref"] == pid]
    assert listing["what"] == "listing on etsy"
    assert listing["end"] - listing["start"] >= REALISTIC["printify"].publish_ms / 1000
    assert listing["end"] > time.time() + 60


def test_the_sales_channels_take_their_round_trip() -> None:
    for name in ("shopify", "etsy", "tiktok", "meta"):
        with (
            SimulatorProcess(name, free_port(), env=REALISTIC_ENV) as proc,
            httpx.Client(base_url=proc.url, timeout=30, trust_env=False) as http,
        ):
            assert http.get("/_sim/config").json()["latency_ms"] == REALISTIC[name].call_ms
            since = time.time()
            http.get("/no-such-route")
            logged = entries(http, since)
        # Every request the vendor answered is logged, refused ones too.
        assert [e["what"] for e in logged] == ["GET /no-such-route"], name
