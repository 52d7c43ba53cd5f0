"""``pod doctor``'s ComfyUI checks against ComfyUI simulators, misconfigured in turn."""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from shared.adapters.vendors.comfyui import DEFAULT_WORKFLOW
from shared.tools.doctor import Check
from shared.tools.doctor.comfyui import checks
from simulators.process import SimulatorProcess
from tests.support.infra import free_port, wait_for

SIMS = {
    # Prompts of 5 s: the queue test's prompts are still there while it looks.
    "good": {"SIM_COMFYUI_RENDER_MS": "5000"},
    # The bundled workflow's upscale model (UpscaleModelLoader, a V3 node: "COMBO" form) or
    # checkpoint (CheckpointLoaderSimple, V1: a list) missing from the server.
    "no_upscaler": {"SIM_COMFYUI_UPSCALE_MODELS": "RealESRGAN_x2plus.pth"},
    "no_checkpoint": {"SIM_COMFYUI_CHECKPOINTS": "flux1-dev.safetensors"},
}


@pytest.fixture(scope="module")
def sims() -> Iterator[dict[str, str]]:
    procs = {name: SimulatorProcess("comfyui", free_port(), env=env) for name, env in SIMS.items()}
    try:
        with ThreadPoolExecutor(len(procs)) as pool:
            list(pool.map(lambda p: p.start(), procs.values()))
        yield {name: p.url for name, p in procs.items()}
    finally:
        for proc in procs.values():
            proc.stop()


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """Only the ComfyUI settings a test sets (no CONFIG_PATH file, no inherited URL)."""
    for key in ("CONFIG_PATH", "COMFYUI_API_URL", "COMFYUI_WORKFLOW_PATH"):
        monkeypatch.delenv(key, raising=False)
    return monkeypatch


def named(found: list[Check], name: str) -> list[Check]:
    return [c for c in found if c.name == name]


async def test_unset_url_is_skipped(env: pytest.MonkeyPatch) -> None:
    assert await checks() == [
        Check.skipped(
            "comfyui.reachable",
            "COMFYUI_API_URL unset here: not checked (under make up the simulator stands in)",
        )
    ]


async def test_a_server_that_has_everything_passes(
    sims: dict[str, str], env: pytest.MonkeyPatch
) -> None:
    env.setenv("COMFYUI_API_URL", sims["good"])
    # Two prompts: one on the (single) GPU, one waiting behind it.
    wf = json.loads(DEFAULT_WORKFLOW.read_text())
    with httpx.Client(base_url=sims["good"]) as http:
        for seed in (1, 2):
            wf["3"]["inputs"]["seed"] = seed
            assert http.post("/prompt", json={"prompt": wf}).status_code == 200
        wait_for(
            lambda: [len(v) for v in http.get("/queue").json().values()] == [1, 1],
            timeout=4.0,
            what="one prompt running and one waiting",
        )
        try:
            found = await checks()
        finally:
            http.post("/queue", json={"clear": True})
            http.post("/interrupt", json={})
    assert [c.status for c in found] == ["pass", "pass", "pass"], found
    reachable, workflow, queue = found
    assert reachable.name == "comfyui.reachable"
    assert reachable.detail.startswith(f"{sims['good']}: ComfyUI 0.3.64; cuda:0 Simulated RTX")
    assert "24.0 GiB VRAM (20.0 free)" in reachable.detail
    assert workflow.name == "comfyui.workflow"
    assert "UpscaleModelLoader" in workflow.detail and "CheckpointLoaderSimple" in workflow.detail
    assert queue == Check.passed("comfyui.queue", f"{sims['good']}: 1 running, 1 waiting")


async def test_an_unreachable_server_fails_reachable(env: pytest.MonkeyPatch) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    env.setenv("COMFYUI_API_URL", url)
    reachable, *rest = await checks()
    assert reachable.name == "comfyui.reachable" and reachable.status == "fail"
    assert reachable.detail.startswith(f"cannot reach {url}: ComfyUI GET /system_stats failed")
    assert reachable.fix is not None and "COMFYUI_API_URL" in reachable.fix
    assert [(c.name, c.status) for c in rest] == [
        ("comfyui.workflow", "skip"),
        ("comfyui.queue", "skip"),
    ]


async def test_a_missing_upscale_model_in_the_v3_form_is_named(
    sims: dict[str, str], env: pytest.MonkeyPatch
) -> None:
    # Two servers: the good one passes, the one without the model fails and says what it has.
    env.setenv("COMFYUI_API_URL", f"{sims['good']},{sims['no_upscaler']}")
    found = await checks()
    assert [c.status for c in named(found, "comfyui.reachable")] == ["pass", "pass"]
    good, bad = named(found, "comfyui.workflow")
    assert good.status == "pass"
    assert bad.status == "fail"
    assert bad.detail == (
        f"{sims['no_upscaler']} cannot run the workflow: node 10 UpscaleModelLoader: "
        "model_name '4x-UltraSharp.pth' is not on the server (it has: RealESRGAN_x2plus.pth)"
    )
    assert bad.fix is not None and "models/upscale_models" in bad.fix


async def test_a_missing_checkpoint_is_named(sims: dict[str, str], env: pytest.MonkeyPatch) -> None:
    env.setenv("COMFYUI_API_URL", sims["no_checkpoint"])
    (workflow,) = named(await checks(), "comfyui.workflow")
    assert workflow.status == "fail"
    assert workflow.detail == (
        f"{sims['no_checkpoint']} cannot run the workflow: node 4 CheckpointLoaderSimple: "
        "ckpt_name 'sd_xl_base_1.0.safetensors' is not on the server (it has: "
        "flux1-dev.safetensors)"
    )
    assert workflow.fix is not None and "models/checkpoints" in workflow.fix


async def test_a_missing_node_class_is_named(
    sims: dict[str, str], env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # A workflow using a custom node the server does not have installed.
    wf = json.loads(DEFAULT_WORKFLOW.read_text())
    wf["11"]["class_type"] = "UltimateSDUpscale"
    path = tmp_path / "workflow.json"
    path.write_text(json.dumps(wf))
    env.setenv("COMFYUI_API_URL", sims["good"])
    env.setenv("COMFYUI_WORKFLOW_PATH", str(path))
    (workflow,) = named(await checks(), "comfyui.workflow")
    assert workflow.status == "fail"
    assert workflow.detail == (
        f"{sims['good']} cannot run the workflow: node 11: UltimateSDUpscale is not installed"
    )
    assert workflow.fix is not None and "custom_nodes" in workflow.fix
    # A workflow that cannot even be read is said before any server is asked.
    path.write_text("{not json")
    (unreadable,) = await checks()
    assert unreadable.name == "comfyui.workflow" and unreadable.status == "fail"
    assert str(path) in unreadable.detail
    assert unreadable.fix is not None and "COMFYUI_WORKFLOW_PATH" in unreadable.fix


async def test_bad_settings_are_named(env: pytest.MonkeyPatch) -> None:
    env.setenv("COMFYUI_API_URL", "gpu-host:8188")
    (settings,) = await checks()
    assert settings.name == "comfyui.settings" and settings.status == "fail"
    assert "COMFYUI_API_URL" in settings.detail


async def test_credentials_in_the_url_are_used_and_never_shown(
    env: pytest.MonkeyPatch, sims: dict[str, str]
) -> None:
    """A ComfyUI behind a proxy (https://user:secret@host) and one that does not answer: the
    checks run, and no detail or fix carries the password."""
    secret = "s3cret-proxy-pw"
    good = sims["good"].replace("http://", f"http://render:{secret}@")
    down = f"http://render:{secret}@127.0.0.1:{free_port()}"
    env.setenv("COMFYUI_API_URL", f"{good},{down}")
    found = await checks()
    assert secret not in json.dumps([c.as_dict() for c in found])
    assert [c for c in found if c.status == "pass"], found
    assert [c for c in found if c.status == "fail" and "127.0.0.1" in c.detail], found
