"""The real ComfyUIClient against ComfyUI simulators in their own processes (no mocks)."""

from __future__ import annotations

import asyncio
import copy
import io
import json
import logging
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from PIL import Image

from shared.adapters.vendors.comfyui import (
    ComfyUIClient,
    RenderedImage,
    Workflow,
    workflow_problems,
)
from shared.platform.errors import ConfigError, PermanentError, RetryableError, VendorTimeout
from simulators.comfyui import CONTRACT_PATH
from simulators.process import SimulatorProcess
from tests.support.infra import free_port

SIMS = {
    # Two ordinary backends (the pool), one far slower than the timeout test allows, one that
    # fails every execution. Four GPUs each, 200 ms a render.
    "a": {"SIM_COMFYUI_RENDER_MS": "200", "SIM_COMFYUI_WORKERS": "4"},
    "b": {"SIM_COMFYUI_RENDER_MS": "200", "SIM_COMFYUI_WORKERS": "4"},
    "slow": {"SIM_COMFYUI_RENDER_MS": "20000", "SIM_COMFYUI_WORKERS": "1"},
    "failing": {"SIM_COMFYUI_RENDER_MS": "50", "SIM_COMFYUI_EXEC_FAILURE_RATE": "1"},
    # One GPU, as a real ComfyUI process: for the queue-order and time-limit tests.
    "one": {"SIM_COMFYUI_RENDER_MS": "300"},
    # Servers without the workflow's upscale model (a V3 node's dropdown, "COMBO" form) or
    # checkpoint (a V1 node's, a list).
    "no_upscaler": {"SIM_COMFYUI_UPSCALE_MODELS": "RealESRGAN_x2plus.pth,RealESRGAN_x4plus.pth"},
    "no_checkpoint": {"SIM_COMFYUI_CHECKPOINTS": "sd_xl_turbo_1.0.safetensors"},
    # Behind a proxy that asks for a login (ComfyUI has none of its own).
    "proxied": {"SIM_COMFYUI_BASIC_AUTH": "render:s3cret-proxy-pw"},
}


@pytest.fixture(scope="module")
def sims() -> Iterator[dict[str, str]]:
    procs = {name: SimulatorProcess("comfyui", free_port(), env=env) for name, env in SIMS.items()}
    try:
        # Started side by side: each takes about a second to import and bind.
        with ThreadPoolExecutor(len(procs)) as pool:
            list(pool.map(lambda p: p.start(), procs.values()))
        yield {name: p.url for name, p in procs.items()}
    finally:
        for proc in procs.values():
            proc.stop()


@pytest.fixture(scope="module")
def workflow() -> Workflow:
    return ComfyUIClient.load_workflow(None)


def png_size(data: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(data)) as img:
        assert img.format == "PNG"
        return img.size


async def test_render_has_requested_size(sims: dict[str, str], workflow: Workflow) -> None:
    client = ComfyUIClient(base_urls=[sims["a"]], workflow=workflow, timeout_s=20)
    try:
        image = await client.render(
            prompt="a teal octopus", negative_prompt="blurry", seed=3, width=768, height=512,
            job_id="job-1",
        )  # fmt: skip
    finally:
        await client.aclose()
    assert isinstance(image, RenderedImage)
    assert png_size(image.data) == (768, 512)
    assert (image.width, image.height) == (768, 512)
    assert image.backend == sims["a"]
    assert image.prompt_id
    # The workflow given to the client is a template: rendering must not change it.
    assert workflow == ComfyUIClient.load_workflow(None)


async def test_the_upscale_nodes_bring_the_art_to_its_print_size(
    sims: dict[str, str], workflow: Workflow
) -> None:
    client = ComfyUIClient(base_urls=[sims["a"]], workflow=workflow, timeout_s=20)
    try:
        image = await client.render(
            prompt="a teal octopus", negative_prompt="", seed=3, width=512, height=512,
            output_size=(2250, 2250),
        )  # fmt: skip
        # A workflow that cannot scale cannot make a print of that size: said, not ignored.
        plain = {k: v for k, v in workflow.items() if v["class_type"] != "ImageScale"}
        plain["9"] = {**plain["9"], "inputs": {**plain["9"]["inputs"], "images": ["8", 0]}}
        unscaled = ComfyUIClient(base_urls=[sims["a"]], workflow=plain, timeout_s=20)
        try:
            with pytest.raises(PermanentError, match="no ImageScale node"):
                await unscaled.render(
                    prompt="x", negative_prompt="", seed=1, width=512, height=512,
                    output_size=(2250, 2250),
                )  # fmt: skip
        finally:
            await unscaled.aclose()
        # An upscale model the server does not have is permanent whichever ComfyUI says so:
        # 0.3.64 queues the prompt and fails it when the loader runs, a later one answers 400.
        unknown = dict(workflow)
        unknown["10"] = {**unknown["10"], "inputs": {"model_name": "8x-Missing.pth"}}
        missing = ComfyUIClient(base_urls=[sims["a"]], workflow=unknown, timeout_s=20)
        try:
            for combo_check, status in (("execution", None), ("prompt", 400)):
                httpx.post(f"{sims['a']}/_sim/comfyui", json={"combo_check": combo_check})
                with pytest.raises(PermanentError, match=r"8x-Missing\.pth") as info:
                    await missing.render(prompt="x", negative_prompt="", seed=1)
                assert info.value.status == status
        finally:
            httpx.post(f"{sims['a']}/_sim/comfyui", json={"combo_check": "execution"})
            await missing.aclose()
    finally:
        await client.aclose()
    assert png_size(image.data) == (2250, 2250) == (image.width, image.height)


async def start_refused(urls: list[str], workflow: Workflow) -> str:
    """The ConfigError the start-up check raises, as text."""
    client = ComfyUIClient(base_urls=urls, workflow=workflow)
    try:
        with pytest.raises(ConfigError) as info:
            await client.check_workflow()
    finally:
        await client.aclose()
    return str(info.value)


async def test_a_workflow_the_server_cannot_run_stops_the_start(
    sims: dict[str, str], workflow: Workflow
) -> None:
    client = ComfyUIClient(base_urls=[sims["a"], sims["b"]], workflow=workflow)
    try:
        await client.check_workflow()  # the bundled workflow runs: nothing said
    finally:
        await client.aclose()
    broken: Workflow = {
        k: {"class_type": v["class_type"], "inputs": dict(v["inputs"])} for k, v in workflow.items()
    }
    broken["4"]["inputs"]["ckpt_name"] = "sd_xl_turbo_1.0.safetensors"
    broken["3"]["inputs"]["sampler_name"] = "euler_fast"
    broken["13"] = {"class_type": "SuperUpscaler", "inputs": {"image": ["8", 0]}}
    message = await start_refused([sims["a"]], broken)
    assert "COMFYUI_WORKFLOW_PATH" in message and sims["a"] in message
    assert "ckpt_name 'sd_xl_turbo_1.0.safetensors' is not on the server" in message
    assert "sd_xl_base_1.0.safetensors" in message  # what it has instead
    assert "sampler_name 'euler_fast'" in message
    assert "node 13: SuperUpscaler is not installed" in message
    # A server that does not answer is not a configuration error.
    gone = ComfyUIClient(base_urls=[f"http://127.0.0.1:{free_port()}"], workflow=broken)
    try:
        await gone.check_workflow()
    finally:
        await gone.aclose()


async def test_the_start_check_reads_both_dropdown_forms(
    sims: dict[str, str], workflow: Workflow
) -> None:
    """A model the server lacks stops the start, whichever way ComfyUI writes the dropdown:
    UpscaleModelLoader is a V3 node (``["COMBO", {"options": [...]}]``), the checkpoint loader
    a V1 one (``[[...], {...}]``). Before, the V3 form was skipped and every job failed."""
    for sim, missing, has in (
        ("no_upscaler", "model_name '4x-UltraSharp.pth'", "RealESRGAN_x2plus.pth, RealESRGAN_x4"),
        ("no_checkpoint", "ckpt_name 'sd_xl_base_1.0.safetensors'", "sd_xl_turbo_1.0"),
    ):
        message = await start_refused([sims["a"], sims[sim]], workflow)
        assert message.startswith(f"COMFYUI_WORKFLOW_PATH: {sims[sim]} cannot run the workflow")
        assert f"{missing} is not on the server (it has: {has}" in message
        assert message.count("is not on the server") == 1  # only what this server lacks


async def test_the_start_check_refuses_a_server_that_is_not_comfyui(
    workflow: Workflow,
) -> None:
    # COMFYUI_API_URL pointed at another service: a 404 for /object_info, said at start.
    with SimulatorProcess("anthropic", free_port()) as other:
        message = await start_refused([other.url], workflow)
    assert message.startswith(f"COMFYUI_API_URL: {other.url} is not a ComfyUI server")
    assert "GET /object_info failed: Not Found" in message


def test_workflow_problems_read_both_forms_and_refuse_garbage(workflow: Workflow) -> None:
    """Against ComfyUI's own /object_info (the extract from its source): both dropdown forms
    read, and an answer in neither form is named as the server's, not skipped."""
    info = copy.deepcopy(json.loads(CONTRACT_PATH.read_text())["object_info"])
    loader = info["UpscaleModelLoader"]["input"]["required"]["model_name"]
    checkpoint = info["CheckpointLoaderSimple"]["input"]["required"]["ckpt_name"]
    assert loader[0] == "COMBO" and isinstance(checkpoint[0], list)
    loader[1]["options"] = ["4x-UltraSharp.pth"]
    checkpoint[0] = ["sd_xl_base_1.0.safetensors"]
    assert workflow_problems(workflow, info) == []
    loader[1]["options"] = [f"{i}x-Other.pth" for i in range(10)]
    assert workflow_problems(workflow, info) == [
        "node 10 UpscaleModelLoader: model_name '4x-UltraSharp.pth' is not on the server "
        "(it has: 0x-Other.pth, 1x-Other.pth, 2x-Other.pth, 3x-Other.pth, 4x-Other.pth, "
        "5x-Other.pth, 6x-Other.pth, 7x-Other.pth and 2 more)"
    ]
    # A remote dropdown lists its choices elsewhere: nothing to compare with here.
    loader[1] = {"remote": {"route": "/internal/files/upscale_models"}}
    assert workflow_problems(workflow, info) == []
    for garbage, said in (
        ({"options": "4x-UltraSharp.pth"}, "its options are not a list: '4x-UltraSharp.pth'"),
        ("COMBO", "its settings are not an object: 'COMBO'"),
    ):
        info["UpscaleModelLoader"]["input"]["required"]["model_name"] = ["COMBO", garbage]
        assert workflow_problems(workflow, info) == [
            f"node 10 UpscaleModelLoader: /object_info input model_name: {said}"
        ]
    info["UpscaleModelLoader"]["input"]["required"]["model_name"] = [{"COMBO": []}]
    assert workflow_problems(workflow, info) == [
        "node 10 UpscaleModelLoader: /object_info input model_name: its type is neither a name "
        "nor a list: {'COMBO': []}"
    ]
    info["UpscaleModelLoader"]["input"] = ["model_name"]
    info["KSampler"] = "KSampler"
    assert workflow_problems(workflow, info) == [
        "node 3: /object_info describes the inputs of KSampler in a form not understood: "
        "'KSampler'",
        "node 10: /object_info describes the inputs of UpscaleModelLoader in a form not "
        "understood: ['model_name']",
    ]
    assert workflow_problems(workflow, ["KSampler"]) == ["/object_info did not answer an object"]


async def test_fifty_concurrent_renders_over_websocket(
    sims: dict[str, str], workflow: Workflow
) -> None:
    # A 30 s poll interval makes /history polling useless within the deadline, so finishing
    # in time proves completion is signalled over the shared websocket.
    client = ComfyUIClient(
        base_urls=[sims["a"]], workflow=workflow, timeout_s=20, poll_interval_s=30
    )
    try:
        images = await asyncio.gather(
            *(
                client.render(
                    prompt=f"poster {i}", negative_prompt="", seed=i, width=128, height=128
                )
                for i in range(50)
            )
        )
    finally:
        await client.aclose()
    assert len(images) == 50
    assert len({img.data for img in images}) == 50
    assert len({img.prompt_id for img in images}) == 50
    assert all((img.width, img.height) == (128, 128) for img in images)


async def test_pool_uses_both_backends(sims: dict[str, str], workflow: Workflow) -> None:
    client = ComfyUIClient(base_urls=[sims["a"], sims["b"]], workflow=workflow, timeout_s=20)
    try:
        images = await asyncio.gather(
            *(
                client.render(prompt="mug", negative_prompt="", seed=i, width=64, height=64)
                for i in range(16)
            )
        )
    finally:
        await client.aclose()
    used = Counter(img.backend for img in images)
    assert set(used) == {sims["a"], sims["b"]}
    assert used[sims["a"]] == used[sims["b"]] == 8  # least-busy with round-robin ties


async def test_timeout_is_vendor_timeout(sims: dict[str, str], workflow: Workflow) -> None:
    client = ComfyUIClient(base_urls=[sims["slow"]], workflow=workflow, timeout_s=0.75)
    started = time.monotonic()
    try:
        with pytest.raises(VendorTimeout) as info:
            await client.render(prompt="slow", negative_prompt="", seed=1)
    finally:
        await client.aclose()
    assert time.monotonic() - started < 5
    assert info.value.retryable and info.value.vendor == "comfyui"


async def test_execution_failure_is_retryable(sims: dict[str, str], workflow: Workflow) -> None:
    client = ComfyUIClient(base_urls=[sims["failing"]], workflow=workflow, timeout_s=20)
    try:
        with pytest.raises(RetryableError) as info:
            await client.render(prompt="doomed", negative_prompt="", seed=1, width=64, height=64)
    finally:
        await client.aclose()
    assert not isinstance(info.value, PermanentError)
    assert not isinstance(info.value, VendorTimeout)
    assert "KSampler" in info.value.message
    assert "out of memory" in info.value.message


async def test_execution_failure_seen_by_polling_too(
    sims: dict[str, str], workflow: Workflow
) -> None:
    client = ComfyUIClient(
        base_urls=[sims["failing"]], workflow=workflow, timeout_s=20, use_websocket=False,
        poll_interval_s=0.05,
    )  # fmt: skip
    try:
        with pytest.raises(RetryableError, match="KSampler"):
            await client.render(prompt="doomed", negative_prompt="", seed=2, width=64, height=64)
    finally:
        await client.aclose()


async def test_polling_mode(sims: dict[str, str], workflow: Workflow) -> None:
    client = ComfyUIClient(
        base_urls=[sims["b"]], workflow=workflow, timeout_s=20, use_websocket=False,
        poll_interval_s=0.05,
    )  # fmt: skip
    try:
        images = await asyncio.gather(
            *(
                client.render(prompt="tote bag", negative_prompt="", seed=i, width=96, height=160)
                for i in range(5)
            )
        )
    finally:
        await client.aclose()
    assert all(png_size(img.data) == (96, 160) for img in images)
    assert len({img.data for img in images}) == 5


async def test_same_inputs_same_image(sims: dict[str, str], workflow: Workflow) -> None:
    client = ComfyUIClient(base_urls=[sims["a"], sims["b"]], workflow=workflow, timeout_s=20)
    try:
        first, second = await asyncio.gather(
            *(
                client.render(prompt="same", negative_prompt="", seed=9, width=64, height=64)
                for _ in range(2)
            )
        )
    finally:
        await client.aclose()
    assert first.backend != second.backend
    assert first.data == second.data


async def test_workflow_without_sampler_is_permanent(
    sims: dict[str, str], workflow: Workflow
) -> None:
    broken = {k: v for k, v in workflow.items() if v["class_type"] != "KSampler"}
    client = ComfyUIClient(base_urls=[sims["a"]], workflow=broken, timeout_s=20)
    try:
        with pytest.raises(PermanentError, match="KSampler"):
            await client.render(prompt="x", negative_prompt="", seed=1)
    finally:
        await client.aclose()


async def test_workflow_rejected_by_comfyui_is_permanent(
    sims: dict[str, str], workflow: Workflow
) -> None:
    # Fills fine (sampler, encoders and latent are there) but has no output node.
    no_output = {k: v for k, v in workflow.items() if v["class_type"] != "SaveImage"}
    client = ComfyUIClient(base_urls=[sims["a"]], workflow=no_output, timeout_s=20)
    try:
        with pytest.raises(PermanentError, match="Prompt has no outputs") as info:
            await client.render(prompt="x", negative_prompt="", seed=1)
    finally:
        await client.aclose()
    assert info.value.status == 400 and info.value.code == "prompt_no_outputs"


async def test_unreachable_backend_is_retryable(workflow: Workflow) -> None:
    client = ComfyUIClient(
        base_urls=[f"http://127.0.0.1:{free_port()}"], workflow=workflow, timeout_s=10
    )
    try:
        with pytest.raises(RetryableError) as info:
            await client.render(prompt="x", negative_prompt="", seed=1)
    finally:
        await client.aclose()
    assert not isinstance(info.value, VendorTimeout)


async def test_fills_workflow_by_links_not_ids(sims: dict[str, str], workflow: Workflow) -> None:
    # Same graph under different node ids: the client must still find every node.
    renamed_ids = {old: f"n{old}" for old in workflow}

    def relink(value: Any) -> Any:
        if isinstance(value, list) and len(value) == 2 and value[0] in renamed_ids:
            return [renamed_ids[value[0]], value[1]]
        return value

    renamed: Workflow = {
        renamed_ids[k]: {**v, "inputs": {n: relink(x) for n, x in v["inputs"].items()}}
        for k, v in workflow.items()
    }
    client = ComfyUIClient(base_urls=[sims["a"]], workflow=renamed, timeout_s=20)
    try:
        image = await client.render(
            prompt="a castle", negative_prompt="", seed=4, width=80, height=48
        )
        plain = ComfyUIClient(base_urls=[sims["a"]], workflow=workflow, timeout_s=20)
        try:
            reference = await plain.render(
                prompt="a castle", negative_prompt="", seed=4, width=80, height=48
            )
        finally:
            await plain.aclose()
    finally:
        await client.aclose()
    assert png_size(image.data) == (80, 48)
    assert image.data == reference.data  # prompt text and seed reached the renamed nodes
    async with httpx.AsyncClient(base_url=sims["a"]) as http:
        entry = (await http.get(f"/history/{image.prompt_id}")).json()[image.prompt_id]
    nodes = entry["prompt"][2]
    assert nodes["n6"]["inputs"]["text"] == "a castle"
    assert nodes["n3"]["inputs"]["seed"] == 4


async def test_survives_backend_restart(workflow: Workflow) -> None:
    # The shared websocket drops with the server; renders after the restart must still finish
    # (by polling while the socket reconnects, then by websocket again).
    port = free_port()
    env = {"SIM_COMFYUI_RENDER_MS": "100"}
    client = ComfyUIClient(
        base_urls=[f"http://127.0.0.1:{port}"], workflow=workflow, timeout_s=15,
        poll_interval_s=0.05,
    )  # fmt: skip
    try:
        with SimulatorProcess("comfyui", port, env=env):
            first = await client.render(prompt="a", negative_prompt="", seed=1, width=64, height=64)
        with SimulatorProcess("comfyui", port, env=env):
            second = await asyncio.gather(
                *(
                    client.render(prompt="b", negative_prompt="", seed=i, width=64, height=64)
                    for i in range(3)
                )
            )
    finally:
        await client.aclose()
    assert png_size(first.data) == (64, 64)
    assert all(png_size(img.data) == (64, 64) for img in second)


async def sim_books(url: str) -> dict[str, int]:
    async with httpx.AsyncClient(base_url=url) as http:
        return dict((await http.get("/_sim/books")).json())


async def test_a_high_render_waits_only_for_the_gpu_not_the_backlog(
    sims: dict[str, str], workflow: Workflow
) -> None:
    """Twenty low renders wait in the client, not in ComfyUI: ComfyUI never holds more than its
    depth, and a high render finishes before all but the render already on the GPU (the promise
    is at most the GPUs plus one)."""
    client = ComfyUIClient(base_urls=[sims["one"]], workflow=workflow, timeout_s=20)
    done: list[str] = []
    depth_seen: list[int] = []

    async def render(name: str, band: int, seed: int) -> None:
        await client.render(
            prompt=name, negative_prompt="", seed=seed, width=64, height=64, band=band,
            order=(seed,),
        )  # fmt: skip
        done.append(name)

    async def watch() -> None:
        while True:
            books = await sim_books(sims["one"])
            depth_seen.append(books["pending"] + books["running"])
            await asyncio.sleep(0.05)

    try:
        watcher = asyncio.create_task(watch())
        lows = [asyncio.create_task(render(f"low-{i}", 2, i)) for i in range(20)]
        deadline = time.monotonic() + 10
        while (await sim_books(sims["one"]))["running"] == 0:
            assert time.monotonic() < deadline, "the backlog never reached the GPU"
            await asyncio.sleep(0.02)
        await render("high", 0, 1000)
        lows_first = done.index("high")
        await asyncio.gather(*lows)
        watcher.cancel()
    finally:
        await client.aclose()
    assert client.scheduler.backends[0].parallelism == 1  # learned from /system_stats
    assert lows_first <= 1 + 1, done
    # Depth 2 (one running, one queued) plus the high band's one render of headroom.
    assert max(depth_seen) <= 3, depth_seen


async def test_time_limit_counts_on_the_gpu_not_in_the_queue(
    sims: dict[str, str], workflow: Workflow
) -> None:
    # Six 300 ms renders on one GPU take ~1.8 s; each may take 1 s on the GPU: none times out.
    client = ComfyUIClient(base_urls=[sims["one"]], workflow=workflow, timeout_s=1.0)
    try:
        images = await asyncio.gather(
            *(
                client.render(prompt="queue", negative_prompt="", seed=i, width=64, height=64)
                for i in range(6)
            )
        )
    finally:
        await client.aclose()
    assert len(images) == 6


async def test_a_timed_out_running_prompt_is_interrupted(
    sims: dict[str, str], workflow: Workflow
) -> None:
    before = await sim_books(sims["slow"])
    client = ComfyUIClient(base_urls=[sims["slow"]], workflow=workflow, timeout_s=0.5)
    try:
        with pytest.raises(VendorTimeout, match="finish"):
            await client.render(prompt="stuck", negative_prompt="", seed=5, width=64, height=64)
    finally:
        await client.aclose()
    deadline = time.monotonic() + 5
    while True:
        books = await sim_books(sims["slow"])
        if books["interrupted"] == before["interrupted"] + 1 and books["running"] == 0:
            break
        assert time.monotonic() < deadline, books
        await asyncio.sleep(0.05)


async def test_cancelled_renders_leave_the_gpu(sims: dict[str, str], workflow: Workflow) -> None:
    """A job whose sibling render failed cancels the rest: submitted ones are deleted from
    the queue or interrupted, so the GPU is free for other work."""
    client = ComfyUIClient(base_urls=[sims["slow"]], workflow=workflow, timeout_s=60)
    try:
        tasks = [
            asyncio.create_task(
                client.render(prompt="sibling", negative_prompt="", seed=i, width=64, height=64)
            )
            for i in range(3)
        ]
        deadline = time.monotonic() + 5
        while (await sim_books(sims["slow"]))["running"] == 0:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.1)  # execution_start has reached the client
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        deadline = time.monotonic() + 5
        while True:
            books = await sim_books(sims["slow"])
            if books["running"] == 0 and books["pending"] == 0:
                break
            assert time.monotonic() < deadline, books
            await asyncio.sleep(0.05)
    finally:
        await client.aclose()


async def test_a_cancelled_render_is_interrupted_without_websocket_events_too(
    sims: dict[str, str], workflow: Workflow
) -> None:
    """Polling, the client never sees the execution start: it asks ``/queue`` whether its
    prompt runs, and interrupts it by name (a seller's cancel must free the GPU either way)."""
    before = await sim_books(sims["slow"])
    client = ComfyUIClient(
        base_urls=[sims["slow"]], workflow=workflow, timeout_s=60, use_websocket=False
    )
    try:
        task = asyncio.create_task(
            client.render(prompt="cancelled", negative_prompt="", seed=77, width=64, height=64)
        )
        deadline = time.monotonic() + 5
        while (await sim_books(sims["slow"]))["running"] == 0:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.02)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        deadline = time.monotonic() + 5
        while True:
            books = await sim_books(sims["slow"])
            if books["interrupted"] == before["interrupted"] + 1 and books["running"] == 0:
                break
            assert time.monotonic() < deadline, books
            await asyncio.sleep(0.05)
    finally:
        await client.aclose()
    assert books["executed"] == before["executed"]


def test_filling_the_workflow_leaves_the_template_as_it_was() -> None:
    import copy
    import json

    from shared.adapters.vendors.comfyui import DEFAULT_WORKFLOW, fill_workflow

    template = json.loads(DEFAULT_WORKFLOW.read_text())
    before = copy.deepcopy(template)
    first = fill_workflow(
        template, prompt="a cat", negative_prompt="blur", seed=7, width=64, height=64,
        output_size=(256, 256),
    )  # fmt: skip
    second = fill_workflow(
        template, prompt="a dog", negative_prompt="", seed=8, width=32, height=32,
        output_size=(128, 128),
    )  # fmt: skip
    assert template == before  # every render starts from the same graph
    assert json.dumps(first) != json.dumps(second)
    texts = {json.dumps(n["inputs"]) for n in first.values()}
    assert any("a cat" in t for t in texts) and not any("a dog" in t for t in texts)


async def test_credentials_in_the_url_show_nowhere_but_still_reach_the_server(
    sims: dict[str, str], workflow: Workflow, caplog: pytest.LogCaptureFixture
) -> None:
    """A ComfyUI behind a proxy, configured as http://user:secret@host: a render works, and
    neither its logs, its image's backend nor an error name the password."""
    caplog.set_level(logging.DEBUG)
    secret = "s3cret-proxy-pw"
    with_creds = sims["proxied"].replace("http://", f"http://render:{secret}@")
    down = f"http://render:{secret}@127.0.0.1:{free_port()}"
    client = ComfyUIClient(base_urls=[with_creds], workflow=workflow, timeout_s=20)
    try:
        image = await client.render(prompt="x", negative_prompt="", seed=1, job_id="creds-1")
        await client.check_workflow()
        ws_up = client._backends[0].ws_up  # the websocket passed the proxy's login too
    finally:
        await client.aclose()
    assert image.backend == sims["proxied"] and client.urls == [sims["proxied"]]
    assert ws_up
    # Without the login the proxy refuses: the credentials above did reach it.
    anonymous = httpx.get(f"{sims['proxied']}/system_stats", timeout=10)
    assert anonymous.status_code == 401
    unreachable = ComfyUIClient(base_urls=[down], workflow=workflow, timeout_s=5)
    try:
        with pytest.raises(RetryableError) as info:
            await unreachable.render(prompt="x", negative_prompt="", seed=1, job_id="creds-2")
        await unreachable.check_workflow()  # logs the server it could not ask
    finally:
        await unreachable.aclose()
    assert "127.0.0.1" in str(info.value)
    shown = [caplog.text, str(info.value), info.value.describe(), repr(image.backend)]
    assert not [text for text in shown if secret in text]
    assert "comfyui" in caplog.text  # the client did log (the URL without its password)
