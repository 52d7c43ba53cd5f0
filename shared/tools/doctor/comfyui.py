"""ComfyUI: each configured server answers, has every node and model of the workflow, and
how busy its queue is. Read-only: ``GET /system_stats``, ``GET /object_info``, ``GET /queue``."""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit, urlunsplit

from shared.adapters.vendors.comfyui import (
    ComfyUIClient,
    ComfyUISettings,
    SystemStats,
    comfyui_client,
)
from shared.platform.errors import ConfigError, PermanentError, PodError
from shared.platform.settings import load_settings
from shared.tools.doctor import Check

# Per server and call: a server that takes longer is as good as down for a preflight.
CALL_TIMEOUT_S = 15.0
GIB = 1024**3


async def checks() -> list[Check]:
    try:
        settings = load_settings(ComfyUISettings)
    except ConfigError as exc:
        return [Check.failed("comfyui.settings", exc.message, "correct the settings named")]
    if "comfyui_api_url" not in settings.model_fields_set:
        return [
            Check.skipped(
                "comfyui.reachable",
                "COMFYUI_API_URL unset here: not checked (under make up the simulator stands in)",
            )
        ]
    try:
        client = comfyui_client(settings)  # reads the workflow
    except PermanentError as exc:
        return [
            Check.failed(
                "comfyui.workflow",
                exc.message,
                "set COMFYUI_WORKFLOW_PATH to an API-format workflow JSON (ComfyUI: Export "
                "(API)), or unset it for the bundled SDXL one",
            )
        ]
    try:
        found = await asyncio.gather(*(_server(client, url) for url in client.urls))
    finally:
        await client.aclose()
    return [check for server in found for check in server]


def _shown(url: str) -> str:
    """``url`` without any user:password in it."""
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=host))


def _said(exc: PodError, url: str) -> str:
    return exc.message.replace(url, _shown(url))


async def _server(client: ComfyUIClient, url: str) -> list[Check]:
    where = _shown(url)
    try:
        async with asyncio.timeout(CALL_TIMEOUT_S):
            stats = await client.system_stats(url)
    except PermanentError as exc:
        return [
            Check.failed(
                "comfyui.reachable",
                f"{where} does not answer as ComfyUI does: {_said(exc, url)}",
                "set COMFYUI_API_URL to the base URL of the ComfyUI server (e.g. "
                "http://gpu-host:8188), not a page or another service",
            ),
            *_not_checked(where),
        ]
    except (PodError, TimeoutError) as exc:
        said = _said(exc, url) if isinstance(exc, PodError) else f"no answer in {CALL_TIMEOUT_S}s"
        return [
            Check.failed(
                "comfyui.reachable",
                f"cannot reach {where}: {said}",
                "start ComfyUI there (python main.py --listen 0.0.0.0 --port 8188) or correct "
                "COMFYUI_API_URL; check the network between this host and it",
            ),
            *_not_checked(where),
        ]
    return [
        Check.passed("comfyui.reachable", f"{where}: {_describe(stats)}"),
        await _workflow(client, url, where),
        await _queue(client, url, where),
    ]


def _not_checked(where: str) -> list[Check]:
    return [
        Check.skipped(f"comfyui.{what}", f"{where}: not checked, the server did not answer")
        for what in ("workflow", "queue")
    ]


def _describe(stats: SystemStats) -> str:
    devices = []
    for device in stats.devices:
        vram = (
            f", {device.vram_total / GIB:.1f} GiB VRAM ({device.vram_free / GIB:.1f} free)"
            if device.vram_total is not None and device.vram_free is not None
            else ""
        )
        devices.append(f"{device.name} [{device.type}{vram}]")
    return f"ComfyUI {stats.comfyui_version or '(version not said)'}; " + (
        "; ".join(devices) or "no device reported"
    )


async def _workflow(client: ComfyUIClient, url: str, where: str) -> Check:
    try:
        async with asyncio.timeout(CALL_TIMEOUT_S):
            problems = await client.missing_for_workflow(url)
    except (PodError, TimeoutError) as exc:
        said = _said(exc, url) if isinstance(exc, PodError) else f"no answer in {CALL_TIMEOUT_S}s"
        return Check.failed(
            "comfyui.workflow",
            f"{where}: /object_info not read: {said}",
            "see that the server is a ComfyUI and answers GET /object_info",
        )
    if problems:
        return Check.failed(
            "comfyui.workflow",
            f"{where} cannot run the workflow: " + "; ".join(problems),
            "install what is missing on that server (a checkpoint in models/checkpoints, an "
            "upscale model in models/upscale_models, a custom node in custom_nodes and restart "
            "ComfyUI), or set COMFYUI_WORKFLOW_PATH to a workflow using what it has",
        )
    classes = sorted({str(node.get("class_type")) for node in client.workflow.values()})
    return Check.passed(
        "comfyui.workflow",
        f"{where} has every node of the workflow ({', '.join(classes)}) and every model and "
        f"value it names",
    )


async def _queue(client: ComfyUIClient, url: str, where: str) -> Check:
    try:
        async with asyncio.timeout(CALL_TIMEOUT_S):
            queue = await client.queue_state(url)
    except (PodError, TimeoutError) as exc:
        said = _said(exc, url) if isinstance(exc, PodError) else f"no answer in {CALL_TIMEOUT_S}s"
        return Check.failed(
            "comfyui.queue",
            f"{where}: /queue not read: {said}",
            "see that the server is a ComfyUI and answers GET /queue",
        )
    return Check.passed(
        "comfyui.queue", f"{where}: {queue.running} running, {queue.pending} waiting"
    )
