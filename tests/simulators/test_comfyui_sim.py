"""The ComfyUI simulator over real HTTP and websockets, in its own process."""

from __future__ import annotations

import asyncio
import copy
import io
import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import websockets
from PIL import Image

from shared.adapters.vendors.comfyui import DEFAULT_WORKFLOW
from simulators.comfyui import (
    CHECKPOINTS,
    CONTRACT_PATH,
    LATENT_SOURCES,
    SAMPLER_SEED_INPUT,
    TEXT_INPUTS,
)
from simulators.process import SimulatorProcess
from tests.support.infra import free_port

WORKFLOW_PATH = DEFAULT_WORKFLOW
DEADLINE_S = 10.0


@pytest.fixture(scope="module")
def sim() -> Iterator[SimulatorProcess]:
    # 300 ms per render: long enough to observe a pending prompt, short enough for a fast suite.
    env = {"SIM_COMFYUI_RENDER_MS": "300", "SIM_COMFYUI_WORKERS": "4", "SIM_SEED": "7"}
    with SimulatorProcess("comfyui", free_port(), env=env) as proc:
        yield proc


def workflow(
    text: str = "a red fox",
    seed: int = 1,
    width: int = 1024,
    height: int = 1024,
    out: tuple[int, int] | None = None,
) -> dict[str, Any]:
    """The bundled workflow: sampled at ``width`` x ``height``, upscaled x4 by its model, then
    scaled to ``out`` (default: back to the sampled size)."""
    wf: dict[str, Any] = json.loads(WORKFLOW_PATH.read_text())
    wf["6"]["inputs"]["text"] = text
    wf["7"]["inputs"]["text"] = "blurry"
    wf["3"]["inputs"]["seed"] = seed
    wf["5"]["inputs"]["width"] = width
    wf["5"]["inputs"]["height"] = height
    wf["12"]["inputs"]["width"], wf["12"]["inputs"]["height"] = out or (width, height)
    return wf


async def submit(http: httpx.AsyncClient, wf: dict[str, Any], client_id: str | None = None) -> str:
    resp = await http.post("/prompt", json={"prompt": wf, "client_id": client_id})
    assert resp.status_code == 200, resp.text
    return str(resp.json()["prompt_id"])


async def wait_history(http: httpx.AsyncClient, prompt_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + DEADLINE_S
    while time.monotonic() < deadline:
        body = (await http.get(f"/history/{prompt_id}")).json()
        if body:
            return dict(body[prompt_id])
        await asyncio.sleep(0.05)
    raise AssertionError(f"prompt {prompt_id} not in history after {DEADLINE_S}s")


async def render_bytes(http: httpx.AsyncClient, wf: dict[str, Any]) -> bytes:
    entry = await wait_history(http, await submit(http, wf))
    image = entry["outputs"]["9"]["images"][0]
    resp = await http.get("/view", params=image)
    assert resp.status_code == 200
    return resp.content


async def test_post_prompt_shape(sim: SimulatorProcess) -> None:
    async with httpx.AsyncClient(base_url=sim.url) as http:
        resp = await http.post("/prompt", json={"prompt": workflow(), "client_id": "x"})
    assert resp.status_code == 200
    body = resp.json()
    assert set(body) == {"prompt_id", "number", "node_errors"}
    assert isinstance(body["prompt_id"], str) and body["prompt_id"]
    assert isinstance(body["number"], int)
    assert body["node_errors"] == {}


async def collect_ws(ws: websockets.ClientConnection, prompt_id: str) -> list[dict[str, Any]]:
    """Messages about ``prompt_id`` until ComfyUI's end marker (executing with node null)."""
    events: list[dict[str, Any]] = []
    async with asyncio.timeout(DEADLINE_S):
        while True:
            msg = json.loads(await ws.recv())
            if msg["data"].get("prompt_id") != prompt_id:
                continue
            events.append(msg)
            if msg["type"] == "executing" and msg["data"]["node"] is None:
                return events


async def test_websocket_event_sequence(sim: SimulatorProcess) -> None:
    client_id = uuid.uuid4().hex
    ws_url = sim.url.replace("http", "ws") + f"/ws?clientId={client_id}"
    async with websockets.connect(ws_url) as ws, httpx.AsyncClient(base_url=sim.url) as http:
        hello = json.loads(await asyncio.wait_for(ws.recv(), DEADLINE_S))
        assert hello["type"] == "status"
        assert hello["data"]["sid"] == client_id
        assert isinstance(hello["data"]["status"]["exec_info"]["queue_remaining"], int)

        prompt_id = await submit(http, workflow(), client_id)
        events = await collect_ws(ws, prompt_id)

    types = [e["type"] for e in events]
    assert types[0] == "execution_start"
    assert types[-2:] == ["execution_success", "executing"]
    executing = [e["data"]["node"] for e in events if e["type"] == "executing"]
    # Dependencies first: checkpoint before sampler, sampler before decode before save.
    assert executing[-1] is None
    assert executing.index("4") < executing.index("3") < executing.index("8") < executing.index("9")
    progress = [e["data"] for e in events if e["type"] == "progress"]
    assert [p["value"] for p in progress] == list(range(1, 31))
    assert all(p["max"] == 30 and p["node"] == "3" for p in progress)
    executed = [e["data"] for e in events if e["type"] == "executed"]
    assert len(executed) == 1 and executed[0]["node"] == "9"
    image = executed[0]["output"]["images"][0]
    assert image["type"] == "output" and image["subfolder"] == ""
    assert image["filename"].startswith("pod_") and image["filename"].endswith(".png")
    assert isinstance(events[-2]["data"]["timestamp"], int)


async def test_history_pending_then_view_png_of_workflow_size(sim: SimulatorProcess) -> None:
    async with httpx.AsyncClient(base_url=sim.url) as http:
        prompt_id = await submit(http, workflow(width=640, height=384))
        assert (await http.get(f"/history/{prompt_id}")).json() == {}  # 300 ms render: pending
        entry = await wait_history(http, prompt_id)
        assert entry["status"]["status_str"] == "success"
        assert entry["status"]["completed"] is True
        assert [m[0] for m in entry["status"]["messages"]][-1] == "execution_success"
        assert entry["prompt"][1] == prompt_id
        image = entry["outputs"]["9"]["images"][0]
        resp = await http.get(
            "/view", params={"filename": image["filename"], "subfolder": "", "type": "output"}
        )
        assert resp.status_code == 200
        assert resp.headers["content-type"] == "image/png"
        with Image.open(io.BytesIO(resp.content)) as img:
            assert img.format == "PNG"
            assert img.size == (640, 384)
        all_history = (await http.get("/history")).json()
        assert prompt_id in all_history
        missing = await http.get("/view", params={"filename": "nope.png", "type": "output"})
        assert missing.status_code == 404


async def test_the_upscale_nodes_set_the_saved_size(sim: SimulatorProcess) -> None:
    def size(data: bytes) -> tuple[int, int]:
        with Image.open(io.BytesIO(data)) as img:
            return img.size

    async with httpx.AsyncClient(base_url=sim.url) as http:
        scaled = await render_bytes(http, workflow(width=320, height=192, out=(1500, 900)))
        assert size(scaled) == (1500, 900)
        by_model = workflow(width=320, height=192, out=(0, 0))  # 0 x 0: the model's x4 stays
        assert size(await render_bytes(http, by_model)) == (1280, 768)
        keep_aspect = workflow(width=320, height=192, out=(1000, 0))
        assert size(await render_bytes(http, keep_aspect)) == (1000, 600)
        for node, name, value in (
            ("4", "ckpt_name", "sd_xl_turbo_1.0.safetensors"),
            ("3", "sampler_name", "euler_fast"),
            ("3", "scheduler", "linear"),
            ("12", "upscale_method", "sharpest"),
            ("12", "crop", "sideways"),
        ):
            bad = workflow()
            bad[node]["inputs"][name] = value
            resp = await http.post("/prompt", json={"prompt": bad})
            assert resp.status_code == 400, resp.text
            errors = resp.json()["node_errors"][node]["errors"]
            assert errors[0]["type"] == "value_not_in_list" and value in errors[0]["details"]
        too_big = workflow(out=(9000, 9000))
        assert (await http.post("/prompt", json={"prompt": too_big})).status_code == 400


async def test_a_missing_upscale_model_fails_as_the_comfyui_version_does(
    sim: SimulatorProcess,
) -> None:
    """UpscaleModelLoader is a V3 node: ComfyUI 0.3.64 does not check its dropdown at /prompt,
    so the prompt is queued and fails when the loader runs; a later ComfyUI answers 400."""
    bad = workflow()
    bad["10"]["inputs"]["model_name"] = "8x-Missing.pth"
    async with httpx.AsyncClient(base_url=sim.url) as http:
        assert (await http.get("/_sim/comfyui")).json()["combo_check"] == "execution"
        prompt_id = await submit(http, bad)
        entry = await wait_history(http, prompt_id)
        assert entry["status"]["status_str"] == "error" and not entry["outputs"]
        event, error = entry["status"]["messages"][-1]
        assert event == "execution_error"
        assert (error["node_id"], error["node_type"]) == ("10", "UpscaleModelLoader")
        assert error["exception_type"] == "FileNotFoundError"
        assert error["exception_message"] == (
            "Model in folder 'upscale_models' with filename '8x-Missing.pth' not found."
        )
        await http.post("/_sim/comfyui", json={"combo_check": "prompt"})
        try:
            resp = await http.post("/prompt", json={"prompt": bad})
        finally:
            await http.post("/_sim/comfyui", json={"combo_check": "execution"})
        assert resp.status_code == 400, resp.text
        (error,) = resp.json()["node_errors"]["10"]["errors"]
        assert error["type"] == "value_not_in_list"
        assert error["details"] == (
            "model_name: '8x-Missing.pth' not in "
            "['4x-UltraSharp.pth', 'RealESRGAN_x2plus.pth', 'RealESRGAN_x4plus.pth']"
        )
        assert error["extra_info"]["input_config"][0] == "COMBO"
        bogus = await http.post("/_sim/comfyui", json={"combo_check": "never"})
        assert bogus.status_code == 400


async def test_rendering_is_deterministic(sim: SimulatorProcess) -> None:
    async with httpx.AsyncClient(base_url=sim.url) as http:
        a1, a2, other_seed, other_text = await asyncio.gather(
            render_bytes(http, workflow("a lighthouse at dusk", seed=5, width=256, height=256)),
            render_bytes(http, workflow("a lighthouse at dusk", seed=5, width=256, height=256)),
            render_bytes(http, workflow("a lighthouse at dusk", seed=6, width=256, height=256)),
            render_bytes(http, workflow("a lighthouse at dawn", seed=5, width=256, height=256)),
        )
    assert a1 == a2
    assert a1 != other_seed
    assert a1 != other_text


def _without_outputs() -> dict[str, Any]:
    wf = workflow()
    del wf["9"]
    return wf


def _missing_class_type() -> dict[str, Any]:
    wf = workflow()
    del wf["8"]["class_type"]
    return wf


def _dangling_link() -> dict[str, Any]:
    wf = workflow()
    wf["8"]["inputs"]["samples"] = ["42", 0]
    return wf


def _missing_input() -> dict[str, Any]:
    wf = workflow()
    del wf["3"]["inputs"]["positive"]
    return wf


@pytest.mark.parametrize(
    ("prompt", "error_type", "bad_node"),
    [
        pytest.param(["not", "a", "dict"], "invalid_prompt", None, id="not-a-dict"),
        pytest.param(_missing_class_type(), "invalid_prompt", None, id="missing-class-type"),
        pytest.param(_without_outputs(), "prompt_no_outputs", None, id="no-output-node"),
        pytest.param(_dangling_link(), "prompt_outputs_failed_validation", "8", id="dangling-link"),
        pytest.param(_missing_input(), "prompt_outputs_failed_validation", "3", id="missing-input"),
    ],
)
async def test_invalid_workflow_is_400_with_node_errors(
    sim: SimulatorProcess, prompt: object, error_type: str, bad_node: str | None
) -> None:
    async with httpx.AsyncClient(base_url=sim.url) as http:
        resp = await http.post("/prompt", json={"prompt": prompt})
    assert resp.status_code == 400
    body = resp.json()
    assert body["error"]["type"] == error_type
    assert set(body["error"]) == {"type", "message", "details", "extra_info"}
    assert isinstance(body["node_errors"], dict)
    if bad_node is not None:
        node_error = body["node_errors"][bad_node]
        assert node_error["errors"] and node_error["class_type"]


async def test_queue_and_system_stats_shapes(sim: SimulatorProcess) -> None:
    async with httpx.AsyncClient(base_url=sim.url) as http:
        # Eight 300 ms prompts on four GPUs: some run while others wait.
        ids = [await submit(http, workflow(seed=100 + i, width=64, height=64)) for i in range(8)]
        queue = (await http.get("/queue")).json()
        assert set(queue) == {"queue_running", "queue_pending"}
        listed = [item[1] for item in queue["queue_running"] + queue["queue_pending"]]
        assert set(listed) <= set(ids) and len(queue["queue_running"]) <= 4
        assert len(listed) >= 4
        item = (queue["queue_running"] + queue["queue_pending"])[0]
        assert isinstance(item[0], int) and isinstance(item[2], dict)
        for pid in ids:
            await wait_history(http, pid)
        assert (await http.get("/queue")).json() == {"queue_running": [], "queue_pending": []}

        stats = (await http.get("/system_stats")).json()
        system = stats["system"]
        for key in ("os", "python_version", "embedded_python", "comfyui_version"):
            assert key in system
        assert len(stats["devices"]) == 4
        for device in stats["devices"]:
            assert {"name", "type", "vram_total", "vram_free"} <= set(device)
        info = (await http.get("/object_info")).json()
        assert info["SaveImage"]["output_node"] is True
        books = (await http.get("/_sim/books")).json()
        assert books["executed"] >= 8 and books["prompts_queued"] >= 8


async def test_injected_execution_failure(sim: SimulatorProcess) -> None:
    client_id = uuid.uuid4().hex
    ws_url = sim.url.replace("http", "ws") + f"/ws?clientId={client_id}"
    async with httpx.AsyncClient(base_url=sim.url) as http:
        before = (await http.get("/_sim/books")).json()["failed"]
        await http.post("/_sim/comfyui", json={"exec_failure_rate": 1.0})
        try:
            async with websockets.connect(ws_url) as ws:
                await ws.recv()  # initial status
                prompt_id = await submit(http, copy.deepcopy(workflow()), client_id)
                events = await collect_ws(ws, prompt_id)
        finally:
            await http.post("/_sim/comfyui", json={"exec_failure_rate": 0.0})
        errors = [e["data"] for e in events if e["type"] == "execution_error"]
        assert len(errors) == 1
        error = errors[0]
        assert error["node_type"] == "KSampler" and error["node_id"] == "3"
        assert error["exception_type"] and error["exception_message"]
        assert isinstance(error["traceback"], list)
        assert "execution_success" not in [e["type"] for e in events]
        entry = await wait_history(http, prompt_id)
        assert entry["status"]["status_str"] == "error"
        assert entry["outputs"] == {}
        assert (await http.get("/_sim/books")).json()["failed"] == before + 1


async def test_one_gpu_runs_in_comfyui_queue_order_with_front() -> None:
    """Lowest number first: ``front`` jumps everything queued normally (a later front before an
    earlier one, as ComfyUI negates its counter), a client's own ``number`` is used as given."""
    # The default: one prompt at a time. Long enough that every prompt below is queued while
    # the first one runs, even on a loaded machine.
    env = {"SIM_COMFYUI_RENDER_MS": "800"}
    with SimulatorProcess("comfyui", free_port(), env=env) as proc:
        async with httpx.AsyncClient(base_url=proc.url) as http:
            assert len((await http.get("/system_stats")).json()["devices"]) == 1

            async def post(name: str, **extra: object) -> str:
                wf = workflow(text=name, width=64, height=64)
                resp = await http.post("/prompt", json={"prompt": wf, **extra})
                assert resp.status_code == 200, resp.text
                return str(resp.json()["prompt_id"])

            names: dict[str, str] = {}
            names[await post("running")] = "running"
            await asyncio.sleep(0.05)  # the first one is on the GPU now
            for name in ("a", "b"):
                names[await post(name)] = name
            names[await post("front-1", front=True)] = "front-1"
            names[await post("front-2", front=True)] = "front-2"
            names[await post("given-0.5", number=0.5)] = "given-0.5"
            queue = (await http.get("/queue")).json()
            # Else the machine was too slow for this test's premise, not the order wrong.
            assert len(queue["queue_running"]) == 1 and len(queue["queue_pending"]) == 5, queue
            for pid in list(names):
                await wait_history(http, pid)
            done_order = [names[pid] for pid in (await http.get("/history")).json()]
    assert done_order == ["running", "front-2", "front-1", "given-0.5", "a", "b"]


async def test_interrupt_and_queue_delete_as_comfyuis_server_does() -> None:
    """ComfyUI's server.py: ``POST /interrupt`` with a ``prompt_id`` interrupts only that prompt
    and only while it runs (without one, whatever runs); ``POST /queue {"delete": [...]}``
    takes pending prompts off the queue (PromptQueue.delete_queue_item), never a running one.
    The interrupted prompt ends in the history with status ``error`` and an
    ``execution_interrupted`` message (execution.py); a deleted one is nowhere."""
    env = {"SIM_COMFYUI_RENDER_MS": "20000"}  # one GPU, a render far longer than the test
    with SimulatorProcess("comfyui", free_port(), env=env) as proc:
        async with httpx.AsyncClient(base_url=proc.url) as http:
            running = await submit(http, workflow(text="running", width=64, height=64))
            waiting = await submit(http, workflow(text="waiting", width=64, height=64))
            kept = await submit(http, workflow(text="kept", width=64, height=64))

            async def queue() -> tuple[list[str], list[str]]:
                body = (await http.get("/queue")).json()
                return (
                    [item[1] for item in body["queue_running"]],
                    [item[1] for item in body["queue_pending"]],
                )

            deadline = time.monotonic() + DEADLINE_S
            while (await queue())[0] != [running]:
                assert time.monotonic() < deadline, await queue()
                await asyncio.sleep(0.05)
            # A prompt that is not running is not interrupted, nor is the one that runs.
            assert (await http.post("/interrupt", json={"prompt_id": waiting})).status_code == 200
            await http.post("/queue", json={"delete": [waiting, running]})
            assert await queue() == ([running], [kept])
            assert (await http.get(f"/history/{waiting}")).json() == {}
            # Named: the running prompt ends, interrupted, and the next one starts.
            assert (await http.post("/interrupt", json={"prompt_id": running})).status_code == 200
            entry = await wait_history(http, running)
            assert entry["status"]["status_str"] == "error"
            assert entry["status"]["completed"] is False
            assert "execution_interrupted" in [m[0] for m in entry["status"]["messages"]]
            assert entry["outputs"] == {}
            deadline = time.monotonic() + DEADLINE_S
            while (await queue())[0] != [kept]:
                assert time.monotonic() < deadline, await queue()
                await asyncio.sleep(0.05)
            # Unnamed (an older client): whatever runs.
            assert (await http.post("/interrupt")).status_code == 200
            entry = await wait_history(http, kept)
            assert "execution_interrupted" in [m[0] for m in entry["status"]["messages"]]
            books = (await http.get("/_sim/books")).json()
    assert (books["interrupted"], books["deleted"], books["executed"]) == (2, 1, 0)


def _dropdown(spec: list[Any]) -> tuple[str, list[Any]] | None:
    """``("v1", options)`` or ``("v3", options)`` when ``spec`` is a dropdown, else None."""
    if isinstance(spec[0], list):
        return "v1", spec[0]
    if spec[0] == "COMBO":
        return "v3", spec[1]["options"]
    return None


async def test_object_info_is_comfyuis_as_extracted() -> None:
    """The served /object_info is the extract from ComfyUI's source, node for node and input
    for input, with only the models folders filled (from this server's models)."""
    contract = json.loads(CONTRACT_PATH.read_text())
    extract, folders = contract["object_info"], contract["_folder_inputs"]
    source = contract["_source"]
    assert source["repository"].startswith("https://github.com/") and len(source["commit"]) == 40
    # Every node the bundled workflow and the simulator's execution use is in it.
    used = {n["class_type"] for n in json.loads(WORKFLOW_PATH.read_text()).values()}
    used |= set(SAMPLER_SEED_INPUT) | set(TEXT_INPUTS) | LATENT_SOURCES | {"PreviewImage"}
    assert used <= set(extract)
    env = {"SIM_COMFYUI_UPSCALE_MODELS": "b-2x.pth,a-4x.pth"}
    with SimulatorProcess("comfyui", free_port(), env=env) as proc:
        async with httpx.AsyncClient(base_url=proc.url) as http:
            served = (await http.get("/object_info")).json()
            one = (await http.get("/object_info/UpscaleModelLoader")).json()
            assert (await http.get("/object_info/NoSuchNode")).json() == {}
    assert list(served) == list(extract)
    assert one == {"UpscaleModelLoader": served["UpscaleModelLoader"]}
    filled = {
        "checkpoints": sorted(CHECKPOINTS),  # the default models
        "upscale_models": ["a-4x.pth", "b-2x.pth"],  # as configured, sorted as ComfyUI does
    }
    forms = set()
    for cls, want in extract.items():
        got = served[cls]
        assert list(got) == list(want), cls  # the same keys in the same order
        assert {k: v for k, v in got.items() if k != "input"} == {
            k: v for k, v in want.items() if k != "input"
        }, cls
        assert list(got["input"]) == list(want["input"]), cls
        for section, inputs in want["input"].items():
            assert list(got["input"][section]) == list(inputs), (cls, section)
            for name, spec in inputs.items():
                served_spec = got["input"][section][name]
                folder = folders.get(cls, {}).get(name)
                if folder is None:
                    assert served_spec == spec, (cls, name)
                    continue
                form, options = _dropdown(spec) or ("", [])
                assert options == [], (cls, name)  # the extract leaves the folder empty
                forms.add(form)
                assert _dropdown(served_spec) == (form, filled[folder]), (cls, name)
                if form == "v3":
                    assert {**served_spec[1], "options": []} == spec[1]
                else:
                    assert served_spec[1:] == spec[1:]
    # ComfyUI writes a V1 node's dropdown as a list, a V3 node's as "COMBO": both are served.
    assert forms == {"v1", "v3"}
    upscaler = served["UpscaleModelLoader"]["input"]["required"]["model_name"]
    assert _dropdown(upscaler) == ("v3", filled["upscale_models"])
    checkpoint = served["CheckpointLoaderSimple"]["input"]["required"]["ckpt_name"]
    assert _dropdown(checkpoint) == ("v1", filled["checkpoints"])
