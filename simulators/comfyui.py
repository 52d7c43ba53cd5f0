"""A ComfyUI simulator: a real HTTP + websocket server speaking ComfyUI's own API.

Clients written against it work unchanged against a real ComfyUI:

- ``POST /prompt`` validates an API-format workflow and queues it (``{prompt_id, number,
  node_errors}``, or 400 ``{error, node_errors}`` exactly as ComfyUI reports a bad graph);
- ``GET /object_info[/{node_class}]``: ComfyUI's own description of the nodes the simulator
  knows, extracted from its source (simulators/contracts/comfyui/object_info.json, by
  ``extract.py`` there), dropdowns in both of ComfyUI's forms (V1 ``[[...], {...}]``, V3
  ``["COMBO", {"options": [...]}]``), models folders filled with this server's models:
  ``SIM_COMFYUI_CHECKPOINTS`` and ``SIM_COMFYUI_UPSCALE_MODELS`` (comma-separated) replace the
  default ones. Required inputs and dropdown values are checked from the same description. A
  V3 dropdown's value is checked when its node runs (``SIM_COMFYUI_COMBO_CHECK=execution``,
  ComfyUI 0.3.64: a missing upscale model fails every prompt with ``FileNotFoundError``) or
  at ``/prompt`` (``prompt``, a later ComfyUI: 400 ``value_not_in_list``);
- ``GET /history[/{prompt_id}]``, ``GET /view``, ``GET/POST /queue``, ``POST /interrupt``,
  ``GET /system_stats``;
- ``/ws?clientId=...`` streams ``status``, ``execution_start``, ``execution_cached``,
  ``executing``, ``progress``, ``executed``, ``execution_success`` / ``execution_error`` to the
  client that submitted the prompt.

Prompts run in ComfyUI's queue order on ``SIM_COMFYUI_WORKERS`` simulated GPUs (default 1, as a
real ComfyUI process runs one prompt at a time): lowest ``number`` first, where ``number`` counts
up per prompt, ``front: true`` makes it negative (ahead of everything queued normally; a later
front prompt goes before an earlier one, as in ComfyUI) and a client may send its own
``number``. Each takes
``SIM_COMFYUI_RENDER_MS`` (default 0), spread over the sampler's steps as progress events, and
"renders" a real PNG whose content is a pure function of positive prompt, seed, size and batch
index. ``SIM_COMFYUI_EXEC_FAILURE_RATE`` (default 0) makes a share of prompts fail in the
sampler as a CUDA out-of-memory would. Only the newest ``SIM_COMFYUI_HISTORY_MAX`` (default
10000) prompts are remembered; images are kept as their recipe and re-rendered on demand, so
memory stays small however many prompts run.

ComfyUI has no login of its own; one reached over a network sits behind a proxy that asks for
one. ``SIM_COMFYUI_BASIC_AUTH=user:password`` plays that proxy (nginx's ``auth_basic``): every
request, the websocket's included, needs those credentials as Basic auth, else 401 (the
websocket handshake is refused).

Simulator-only endpoints: ``GET /_sim/books`` (counts) and ``GET/POST /_sim/comfyui`` (read or
change ``render_ms`` / ``exec_failure_rate`` / ``combo_check`` at run time), besides
``/_sim/config`` from :func:`simulators.common.install_faults`.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import collections
import contextlib
import copy
import functools
import hashlib
import heapq
import hmac
import io
import json
import logging
import os
import random
import re
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Query, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import JSONResponse, Response
from PIL import Image, ImageDraw, ImageFont, ImageOps

from simulators.common import Knobs, _env_float, error_json, install_faults, serve

logger = logging.getLogger(__name__)

# ComfyUI's /object_info for the nodes the simulator knows, derived from ComfyUI's source by
# simulators/contracts/comfyui/extract.py (its "_source" says which commit): served as is, with
# the models folders it leaves empty filled from this simulator's models.
CONTRACT_PATH = Path(__file__).resolve().parent / "contracts" / "comfyui" / "object_info.json"
CONTRACT: dict[str, Any] = json.loads(CONTRACT_PATH.read_text(encoding="utf-8"))
OBJECT_INFO: dict[str, Any] = CONTRACT["object_info"]
FOLDER_INPUTS: dict[str, dict[str, str]] = CONTRACT["_folder_inputs"]
COMFYUI_VERSION = str(CONTRACT["_source"]["comfyui_version"])
OUTPUT_NODES = frozenset(c for c, info in OBJECT_INFO.items() if info["output_node"])
SAMPLER_SEED_INPUT = {"KSampler": "seed", "KSamplerAdvanced": "noise_seed"}
TEXT_INPUTS = {"CLIPTextEncode": ("text",), "CLIPTextEncodeSDXL": ("text_g", "text_l")}
LATENT_SOURCES = frozenset({"EmptyLatentImage", "EmptySD3LatentImage"})
# ComfyUI allows 16384; the simulator stops lower so one bad request cannot eat gigabytes.
MAX_RESOLUTION = 8192
MAX_BATCH = 16
# Required inputs of the core nodes the simulator knows, as ComfyUI declares them; unknown node
# types are accepted as pass-through nodes so custom workflows still run (real ComfyUI would
# need the custom node).
REQUIRED_INPUTS: dict[str, tuple[str, ...]] = {
    cls: tuple(info["input_order"].get("required", ())) for cls, info in OBJECT_INFO.items()
}
# The upscale models in the simulated server's models/upscale_models folder, with their factor
# (``SIM_COMFYUI_UPSCALE_MODELS``, comma-separated, replaces them; a name's "4x"/"x2" gives
# the factor of one not listed here).
UPSCALE_MODELS = {"4x-UltraSharp.pth": 4, "RealESRGAN_x4plus.pth": 4, "RealESRGAN_x2plus.pth": 2}
# The checkpoints in the simulated server's models/checkpoints folder
# (``SIM_COMFYUI_CHECKPOINTS``, comma-separated, replaces them).
CHECKPOINTS = (
    "sd_xl_base_1.0.safetensors",
    "sd_xl_refiner_1.0.safetensors",
    "v1-5-pruned-emaonly.safetensors",
)
# When a V3 node's dropdown ("COMBO" form) is checked: ComfyUI 0.3.64 (the extract's source)
# checks only V1 lists in /prompt, so a missing upscale model fails when its node runs
# ("execution"); a later ComfyUI's validate_inputs checks both at /prompt ("prompt").
COMBO_CHECKS = ("execution", "prompt")


def _files(env: str, default: Iterable[str]) -> tuple[str, ...]:
    raw = os.environ.get(env, "").strip()
    names = [c.strip() for c in raw.split(",") if c.strip()] if raw else list(default)
    return tuple(sorted(names))  # folder_paths.get_filename_list sorts


def folder_files(folder: str) -> tuple[str, ...]:
    """The files of one of the simulated server's models folders."""
    if folder == "checkpoints":
        return _files("SIM_COMFYUI_CHECKPOINTS", CHECKPOINTS)
    if folder == "upscale_models":
        return _files("SIM_COMFYUI_UPSCALE_MODELS", UPSCALE_MODELS)
    return ()


def _upscale_factor(name: str) -> int:
    if name in UPSCALE_MODELS:
        return UPSCALE_MODELS[name]
    found = re.search(r"(\d+)x|x(\d+)", name)
    return int(found.group(1) or found.group(2)) if found else 1


def _input_spec(info: dict[str, Any], name: str) -> list[Any] | None:
    inputs = info["input"]
    spec = inputs.get("required", {}).get(name) or inputs.get("optional", {}).get(name)
    return spec if isinstance(spec, list) else None


# Per-websocket outbox; a client that falls this far behind is disconnected, not buffered.
WS_OUTBOX_MAX = 10_000
IMAGE_CACHE_MAX = 64


@dataclass
class ComfyConfig:
    """Execution knobs of the simulated ComfyUI (``SIM_COMFYUI_*``)."""

    workers: int = 1
    render_ms: float = 0.0
    exec_failure_rate: float = 0.0
    history_max: int = 10_000
    combo_check: str = "execution"  # one of COMBO_CHECKS

    @classmethod
    def from_env(cls) -> ComfyConfig:
        """Read ``SIM_COMFYUI_{WORKERS,RENDER_MS,EXEC_FAILURE_RATE,HISTORY_MAX,COMBO_CHECK}``."""
        combo_check = os.environ.get("SIM_COMFYUI_COMBO_CHECK", "execution")
        if combo_check not in COMBO_CHECKS:
            raise ValueError(f"SIM_COMFYUI_COMBO_CHECK: one of {', '.join(COMBO_CHECKS)}")
        return cls(
            workers=max(1, int(_env_float(["SIM_COMFYUI_WORKERS"], 1))),
            render_ms=_env_float(["SIM_COMFYUI_RENDER_MS"], 0.0),
            exec_failure_rate=_env_float(["SIM_COMFYUI_EXEC_FAILURE_RATE"], 0.0),
            history_max=max(1, int(_env_float(["SIM_COMFYUI_HISTORY_MAX"], 10_000))),
            combo_check=combo_check,
        )


# --------------------------------------------------------------------------- rendering


@functools.lru_cache(maxsize=32)
def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def render_png(
    prompt: str,
    seed: int,
    width: int,
    height: int,
    index: int = 0,
    out_width: int | None = None,
    out_height: int | None = None,
) -> bytes:
    """A PNG that is a pure function of its arguments (same inputs → identical bytes).

    A rotated colour gradient, a few shapes and the first words of the prompt, all drawn from
    a hash of prompt, seed and batch index. Takes ~20-40 ms at 1024x1024. Drawn at the
    sampler's size, then scaled to ``out_width`` x ``out_height`` (the upscale nodes' result).
    """
    digest = hashlib.sha256(f"{seed}\x00{index}\x00{prompt}".encode()).digest()
    rng = random.Random(digest)

    def colour() -> tuple[int, int, int]:
        return (rng.randrange(256), rng.randrange(256), rng.randrange(256))

    # Rotate the small 256x256 gradient and crop its centre (no empty corners), then scale up:
    # far cheaper than drawing a gradient at full size.
    grad = Image.linear_gradient("L").rotate(rng.uniform(0, 360), Image.Resampling.BILINEAR)
    grad = grad.crop((64, 64, 192, 192)).resize((width, height), Image.Resampling.BILINEAR)
    img = ImageOps.colorize(grad, colour(), colour(), colour())
    draw = ImageDraw.Draw(img)
    short = min(width, height)
    for _ in range(rng.randint(4, 8)):
        x, y = rng.randrange(width), rng.randrange(height)
        r = rng.randint(max(1, short // 20), max(2, short // 5))
        box = (x - r, y - r, x + r, y + r)
        draw_shape = draw.ellipse if rng.random() < 0.5 else draw.rectangle
        draw_shape(box, fill=colour(), outline=colour(), width=max(1, r // 10))
    words = " ".join(prompt.split()[:6]) or "(empty prompt)"
    size = max(8, short // 16)
    draw.text(
        (short // 20, max(0, height - size * 2)),
        words,
        font=_font(size),
        fill=(255, 255, 255),
        stroke_width=max(1, size // 12),
        stroke_fill=(0, 0, 0),
    )
    if (out_width or width, out_height or height) != (width, height):
        # Nearest: the cheapest scaling, and its repeated rows keep the PNG small.
        img = img.resize((out_width or width, out_height or height), Image.Resampling.NEAREST)
    buf = io.BytesIO()
    # Level 1: encoding dominates the cost and the bytes stay deterministic at any level.
    img.save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


# --------------------------------------------------------------------------- validation


def _is_link(value: object) -> bool:
    return (
        isinstance(value, list)
        and len(value) == 2
        and isinstance(value[0], str | int)
        and isinstance(value[1], int)
    )


def _error(type_: str, message: str, details: str = "", **extra: Any) -> dict[str, Any]:
    return {"type": type_, "message": message, "details": details, "extra_info": extra}


def validate_prompt(
    prompt: object, *, v3_combos_at_prompt: bool = False
) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    """ComfyUI's checks on a submitted graph: ``(error or None, node_errors)``. A V3 node's
    dropdown is checked here only with ``v3_combos_at_prompt`` (see COMBO_CHECKS)."""
    if not isinstance(prompt, dict) or not prompt:
        return _error("invalid_prompt", "Prompt must be a non-empty object of nodes"), {}
    for node_id, node in prompt.items():
        if not isinstance(node, dict) or "class_type" not in node:
            return _error(
                "invalid_prompt",
                "Cannot execute because a node is missing the class_type property.",
                f"Node ID '#{node_id}'",
            ), {}
    if not any(n["class_type"] in OUTPUT_NODES for n in prompt.values()):
        return _error("prompt_no_outputs", "Prompt has no outputs"), {}

    node_errors: dict[str, Any] = {}
    for node_id, node in prompt.items():
        inputs = node.get("inputs", {})
        errors: list[dict[str, Any]] = []
        if not isinstance(inputs, dict):
            errors.append(_error("invalid_input_type", "Node inputs must be an object"))
            inputs = {}
        for name in REQUIRED_INPUTS.get(node["class_type"], ()):
            if name not in inputs:
                errors.append(
                    _error(
                        "required_input_missing", "Required input is missing", name, input_name=name
                    )
                )
        for name, value in inputs.items():
            if _is_link(value) and str(value[0]) not in prompt:
                errors.append(
                    _error(
                        "exception_during_inner_validation",
                        "Exception when validating inner node",
                        f"{name}: linked node '{value[0]}' does not exist",
                        input_name=name,
                        exception_type="KeyError",
                    )
                )
        for name, value in inputs.items():
            combo = _combo(node["class_type"], name)
            if combo is None or _is_link(value) or (combo.v3 and not v3_combos_at_prompt):
                continue
            if value not in combo.options:
                # As execution.py's validate_inputs words it, long lists (models) summarised.
                listed = len(combo.options) > 20
                errors.append(
                    _error(
                        "value_not_in_list",
                        "Value not in list",
                        f"{name}: '{value}' not in "
                        + (f"(list of length {len(combo.options)})" if listed else
                           str(list(combo.options))),
                        input_name=name,
                        input_config=None if listed else combo.spec,
                        received_value=value,
                    )
                )  # fmt: skip
        if node["class_type"] == "ImageScale":
            for name in ("width", "height"):
                value = inputs.get(name)
                if not isinstance(value, int) or not 0 <= value <= MAX_RESOLUTION:
                    errors.append(
                        _error(
                            "invalid_input_type" if not isinstance(value, int) else
                            "value_bigger_than_max",
                            f"Value out of range 0..{MAX_RESOLUTION}",
                            f"{name}: {value}",
                            input_name=name,
                        )
                    )  # fmt: skip
        if node["class_type"] in LATENT_SOURCES:
            for name in ("width", "height"):
                value = inputs.get(name)
                if isinstance(value, int) and not 16 <= value <= MAX_RESOLUTION:
                    errors.append(
                        _error(
                            "value_bigger_than_max" if value > 16 else "value_smaller_than_min",
                            f"Value out of range 16..{MAX_RESOLUTION}",
                            f"{name}: {value}",
                            input_name=name,
                        )
                    )
        if errors:
            node_errors[str(node_id)] = {
                "errors": errors,
                "dependent_outputs": [
                    k for k, n in prompt.items() if n["class_type"] in OUTPUT_NODES
                ],
                "class_type": node["class_type"],
            }
    if node_errors:
        return _error(
            "prompt_outputs_failed_validation", "Prompt outputs failed validation"
        ), node_errors
    return None, {}


# --------------------------------------------------------------------------- graph reading


@dataclass(frozen=True)
class Recipe:
    """Everything that determines one output image."""

    prompt: str
    seed: int
    width: int
    height: int
    index: int = 0
    out_width: int | None = None  # after the upscale nodes; None = as sampled
    out_height: int | None = None

    def render(self) -> bytes:
        """The PNG this recipe makes (:func:`render_png`)."""
        return render_png(
            self.prompt, self.seed, self.width, self.height, self.index,
            self.out_width, self.out_height,
        )  # fmt: skip


@dataclass
class Plan:
    """What executing a graph means to the simulator."""

    order: list[str]
    sampler: str | None
    steps: int
    recipes: dict[str, list[Recipe]]  # output node id -> images it saves
    prefixes: dict[str, str]


def _upstream(prompt: dict[str, Any], node_id: str) -> list[str]:
    inputs = prompt[node_id].get("inputs", {})
    return [str(v[0]) for v in inputs.values() if _is_link(v)]


def _follow(prompt: dict[str, Any], link: object, wanted: frozenset[str], via: str) -> str | None:
    """Walk ``link`` upstream through ``via`` inputs until a node of a ``wanted`` class."""
    for _ in range(16):
        if not _is_link(link):
            return None
        node_id = str(link[0])  # type: ignore[index]
        node = prompt[node_id]
        if node["class_type"] in wanted:
            return node_id
        link = node.get("inputs", {}).get(via)
    return None


def plan_prompt(prompt: dict[str, Any]) -> Plan:
    """Execution order (dependencies first) and the image recipe of each output node."""
    order: list[str] = []
    seen: set[str] = set()

    def visit(node_id: str) -> None:
        if node_id in seen:
            return
        seen.add(node_id)
        for up in _upstream(prompt, node_id):
            visit(up)
        order.append(node_id)

    outputs = sorted((k for k, n in prompt.items() if n["class_type"] in OUTPUT_NODES), key=str)
    for out in outputs:
        visit(str(out))

    samplers = [n for n in order if prompt[n]["class_type"] in SAMPLER_SEED_INPUT]
    sampler = samplers[0] if samplers else None
    text, seed, steps, width, height, batch = "", 0, 1, 512, 512, 1
    if sampler is not None:
        s_inputs = prompt[sampler]["inputs"]
        seed = _as_int(s_inputs.get(SAMPLER_SEED_INPUT[prompt[sampler]["class_type"]]), 0)
        steps = max(1, _as_int(s_inputs.get("steps"), 1))
        enc = _follow(prompt, s_inputs.get("positive"), frozenset(TEXT_INPUTS), "conditioning")
        if enc is not None:
            cls = prompt[enc]["class_type"]
            text = " ".join(str(prompt[enc]["inputs"].get(k, "")) for k in TEXT_INPUTS[cls]).strip()
        latent = _follow(prompt, s_inputs.get("latent_image"), LATENT_SOURCES, "latent_image")
        if latent is not None:
            l_inputs = prompt[latent]["inputs"]
            width = _as_int(l_inputs.get("width"), 512)
            height = _as_int(l_inputs.get("height"), 512)
            batch = min(MAX_BATCH, max(1, _as_int(l_inputs.get("batch_size"), 1)))
    recipes = {}
    for out in outputs:
        out_w, out_h = _scaled_size(prompt, out, width, height)
        recipes[out] = [Recipe(text, seed, width, height, i, out_w, out_h) for i in range(batch)]
    prefixes = {
        out: str(prompt[out].get("inputs", {}).get("filename_prefix", "ComfyUI")) for out in outputs
    }
    return Plan(order, sampler, steps, recipes, prefixes)


def _scaled_size(prompt: dict[str, Any], output: str, width: int, height: int) -> tuple[int, int]:
    """The size of the images ``output`` saves: the sampled size through every upscale and
    scale node between the decoder and the output."""
    chain: list[str] = []
    link = prompt[output].get("inputs", {}).get("images")
    for _ in range(16):
        if not _is_link(link):
            break
        node_id = str(link[0])
        if prompt[node_id]["class_type"] not in (
            "ImageUpscaleWithModel", "ImageScale", "ImageScaleBy"
        ):  # fmt: skip
            break
        chain.append(node_id)
        link = prompt[node_id].get("inputs", {}).get("image")
    for node_id in reversed(chain):  # from the decoder towards the output
        node = prompt[node_id]
        inputs = node.get("inputs", {})
        if node["class_type"] == "ImageUpscaleWithModel":
            loader = inputs.get("upscale_model")
            name = prompt[str(loader[0])]["inputs"].get("model_name") if _is_link(loader) else None
            factor = _upscale_factor(str(name))
            width, height = width * factor, height * factor
        elif node["class_type"] == "ImageScaleBy":
            by = float(inputs.get("scale_by", 1) or 1)
            width, height = max(1, round(width * by)), max(1, round(height * by))
        else:  # ImageScale: 0 keeps the aspect ratio
            w, h = _as_int(inputs.get("width"), 0), _as_int(inputs.get("height"), 0)
            if w and h:
                width, height = w, h
            elif w:
                width, height = w, max(1, round(height * w / width))
            elif h:
                width, height = max(1, round(width * h / height)), h
    return width, height


def _as_int(value: object, default: int) -> int:
    try:
        return int(value)  # type: ignore[call-overload, no-any-return]
    except (TypeError, ValueError):
        return default


# --------------------------------------------------------------------------- server state


@dataclass
class Job:
    """One queued prompt."""

    number: float
    prompt_id: str
    prompt: dict[str, Any]
    extra_data: dict[str, Any]
    client_id: str | None
    outputs: list[str]
    deleted: bool = False
    interrupted: bool = False

    def queue_item(self) -> list[Any]:
        """ComfyUI's queue/history tuple: [number, prompt_id, prompt, extra_data, outputs]."""
        return [self.number, self.prompt_id, self.prompt, self.extra_data, self.outputs]


class _Interrupted(Exception):
    """Raised inside an execution when ``POST /interrupt`` targeted it."""


class _NodeFailed(Exception):
    """A node that raised while running: ComfyUI reports its exception's type and frames."""

    exception_type = "Exception"
    frames: tuple[str, ...] = ()


class _SimulatedOOM(_NodeFailed):
    """The injected execution failure (what a GPU out-of-memory looks like)."""

    exception_type = "torch.OutOfMemoryError"
    frames = (
        '  File "execution.py", line 327, in execute\n',
        '  File "comfy/samplers.py", line 1034, in sample\n',
    )


class _ModelNotFound(_NodeFailed):
    """A loader given a file its models folder lacks (folder_paths.get_full_path_or_raise)."""

    exception_type = "FileNotFoundError"
    frames = (
        '  File "execution.py", line 277, in _async_map_node_over_list\n',
        '  File "folder_paths.py", line 308, in get_full_path_or_raise\n',
    )


@dataclass
class SimState:
    """Queue, history, stored images and websocket clients of one simulator instance."""

    config: ComfyConfig
    rng: random.Random
    # ComfyUI's PromptQueue: a heap by (number, arrival); `ready` counts what it holds.
    heap: list[tuple[float, int, Job]] = field(default_factory=list)
    ready: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(0))
    pending: dict[str, Job] = field(default_factory=dict)
    running: dict[str, Job] = field(default_factory=dict)
    history: collections.OrderedDict[str, dict[str, Any]] = field(
        default_factory=collections.OrderedDict
    )
    files: collections.OrderedDict[tuple[str, str], Recipe] = field(
        default_factory=collections.OrderedDict
    )
    files_of: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    image_cache: collections.OrderedDict[tuple[str, str], bytes] = field(
        default_factory=collections.OrderedDict
    )
    sockets: dict[str, set[asyncio.Queue[str | None]]] = field(
        default_factory=lambda: collections.defaultdict(set)
    )
    books: collections.Counter[str] = field(default_factory=collections.Counter)
    number: int = 0
    arrivals: int = 0
    busy_s: float = 0.0  # summed over the simulated GPUs
    file_counter: int = 0

    # ---- websocket fan-out

    def send(self, event: str, data: dict[str, Any], sid: str | None) -> None:
        """Queue a message for client ``sid`` (all clients when None); never blocks a worker."""
        text = json.dumps({"type": event, "data": data})
        targets = (
            [q for qs in self.sockets.values() for q in qs]
            if sid is None
            else list(self.sockets.get(sid, ()))
        )
        for q in targets:
            try:
                q.put_nowait(text)
            except asyncio.QueueFull:
                # A reader this far behind is dead weight: drop it rather than grow memory.
                self._drop(q)

    def _drop(self, q: asyncio.Queue[str | None]) -> None:
        for qs in self.sockets.values():
            qs.discard(q)
        with contextlib.suppress(asyncio.QueueFull):
            q.put_nowait(None)

    def queue_remaining(self) -> int:
        return len(self.pending) + len(self.running)

    def status_data(self) -> dict[str, Any]:
        return {"status": {"exec_info": {"queue_remaining": self.queue_remaining()}}}

    def broadcast_status(self) -> None:
        self.send("status", self.status_data(), None)

    # ---- queueing

    def enqueue(
        self,
        prompt: dict[str, Any],
        prompt_id: str,
        client_id: str | None,
        extra: dict[str, Any],
        *,
        number: float | None = None,
        front: bool = False,
    ) -> Job:
        """Queue a prompt the way ComfyUI numbers it: a given ``number`` as is, else the
        counter (negated with ``front``); the counter advances either way but for a given one."""
        if number is None:
            number = -self.number if front else self.number
            self.number += 1
        outputs = sorted(k for k, n in prompt.items() if n["class_type"] in OUTPUT_NODES)
        job = Job(number, prompt_id, prompt, extra, client_id, outputs)
        self.pending[prompt_id] = job
        self.arrivals += 1
        heapq.heappush(self.heap, (number, self.arrivals, job))
        self.ready.release()
        self.books["prompts_queued"] += 1
        self.broadcast_status()
        return job

    def delete_pending(self, prompt_ids: list[str]) -> None:
        for pid in prompt_ids:
            job = self.pending.pop(pid, None)
            if job is not None:
                job.deleted = True
                self.books["deleted"] += 1
        self.broadcast_status()

    # ---- images

    def add_file(self, prompt_id: str, prefix: str, recipe: Recipe) -> dict[str, str]:
        subfolder, _, name = prefix.rpartition("/")
        self.file_counter += 1
        filename = f"{name or 'ComfyUI'}_{self.file_counter:05}_.png"
        key = (subfolder, filename)
        self.files[key] = recipe
        self.files_of.setdefault(prompt_id, []).append(key)
        return {"filename": filename, "subfolder": subfolder, "type": "output"}

    def cache_image(self, key: tuple[str, str], data: bytes) -> None:
        self.image_cache[key] = data
        self.image_cache.move_to_end(key)
        while len(self.image_cache) > IMAGE_CACHE_MAX:
            self.image_cache.popitem(last=False)

    async def image(self, subfolder: str, filename: str) -> bytes | None:
        key = (subfolder, filename)
        cached = self.image_cache.get(key)
        if cached is not None:
            return cached
        recipe = self.files.get(key)
        if recipe is None:
            return None
        data = await asyncio.to_thread(recipe.render)
        self.cache_image(key, data)
        return data

    def store_history(self, job: Job, entry: dict[str, Any]) -> None:
        self.history[job.prompt_id] = entry
        while len(self.history) > self.config.history_max:
            old, _ = self.history.popitem(last=False)
            for key in self.files_of.pop(old, []):
                self.files.pop(key, None)
                self.image_cache.pop(key, None)

    # ---- execution

    async def worker(self, gpu: int) -> None:
        """One simulated GPU: take the lowest-numbered prompt and execute it, until cancelled."""
        while True:
            await self.ready.acquire()
            _, _, job = heapq.heappop(self.heap)
            if job.deleted:
                continue
            self.pending.pop(job.prompt_id, None)
            self.running[job.prompt_id] = job
            began = time.monotonic()
            try:
                await self.execute(job)
            except Exception:
                logger.exception(
                    "simulated execution crashed prompt_id=%s gpu=%d", job.prompt_id, gpu
                )
            finally:
                self.busy_s += time.monotonic() - began
                self.running.pop(job.prompt_id, None)
                # ComfyUI sends this after the history entry exists, on success and failure alike.
                self.send("executing", {"node": None, "prompt_id": job.prompt_id}, job.client_id)
                self.broadcast_status()

    async def execute(self, job: Job) -> None:
        """Run one prompt: the ComfyUI event sequence, progress over the render time, images."""
        pid, sid = job.prompt_id, job.client_id
        messages: list[list[Any]] = []

        def emit(event: str, data: dict[str, Any], record: bool = False) -> None:
            if record:
                messages.append([event, data])
            self.send(event, data, sid)

        emit("execution_start", {"prompt_id": pid, "timestamp": _ms()}, record=True)
        emit("execution_cached", {"nodes": [], "prompt_id": pid, "timestamp": _ms()}, record=True)
        plan = plan_prompt(job.prompt)
        fail_now = self.rng.random() < self.config.exec_failure_rate
        # The images are drawn while the sampler's time passes, so a prompt takes render_ms
        # (not render_ms plus the PNG encoding) and the GPU model stays exact.
        drawn = {
            recipe: asyncio.ensure_future(asyncio.to_thread(recipe.render))
            for recipes in plan.recipes.values()
            for recipe in recipes
        }
        outputs: dict[str, Any] = {}
        executed: list[str] = []
        current = plan.order[0] if plan.order else ""
        try:
            for node_id in plan.order:
                current = node_id
                emit("executing", {"node": node_id, "display_node": node_id, "prompt_id": pid})
                missing = _missing_model(job.prompt[node_id])
                if missing is not None:
                    raise _ModelNotFound(
                        f"Model in folder '{missing[0]}' with filename '{missing[1]}' not found."
                    )
                if node_id == plan.sampler:
                    await self._sample(job, node_id, plan.steps, fail_now)
                if node_id in plan.recipes:
                    images = []
                    for recipe in plan.recipes[node_id]:
                        ref = self.add_file(pid, plan.prefixes[node_id], recipe)
                        data = await drawn[recipe]
                        self.cache_image((ref["subfolder"], ref["filename"]), data)
                        images.append(ref)
                    outputs[node_id] = {"images": images}
                    emit(
                        "executed",
                        {
                            "node": node_id,
                            "display_node": node_id,
                            "output": outputs[node_id],
                            "prompt_id": pid,
                        },
                    )
                executed.append(node_id)
        except (_Interrupted, _NodeFailed) as exc:
            node_type = job.prompt[current]["class_type"]
            if isinstance(exc, _Interrupted):
                self.books["interrupted"] += 1
                emit(
                    "execution_interrupted",
                    {
                        "prompt_id": pid,
                        "node_id": current,
                        "node_type": node_type,
                        "executed": executed,
                        "timestamp": _ms(),
                    },
                    record=True,
                )
            else:
                self.books["failed"] += 1
                emit(
                    "execution_error",
                    {
                        "prompt_id": pid,
                        "node_id": current,
                        "node_type": node_type,
                        "executed": executed,
                        "exception_message": str(exc),
                        "exception_type": getattr(exc, "exception_type", "Exception"),
                        "traceback": list(getattr(exc, "frames", ())),
                        "current_inputs": {},
                        "current_outputs": {},
                        "timestamp": _ms(),
                    },
                    record=True,
                )
            self.store_history(job, self._entry(job, plan, {}, "error", False, messages))
            return
        emit("execution_success", {"prompt_id": pid, "timestamp": _ms()}, record=True)
        self.books["executed"] += 1
        self.store_history(job, self._entry(job, plan, outputs, "success", True, messages))

    async def _sample(self, job: Job, node_id: str, steps: int, fail: bool) -> None:
        # Progress is paced against absolute deadlines so many steps don't accumulate drift.
        per_step = self.config.render_ms / 1000.0 / steps
        start = time.monotonic()
        fail_at = steps // 2 if fail else -1
        for step in range(steps):
            delay = start + (step + 1) * per_step - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            if job.interrupted:
                raise _Interrupted
            if step == fail_at:
                raise _SimulatedOOM(
                    "Allocation on device 0 would exceed allowed memory. (out of memory)"
                )
            self.send(
                "progress",
                {"value": step + 1, "max": steps, "prompt_id": job.prompt_id, "node": node_id},
                job.client_id,
            )

    def _entry(
        self,
        job: Job,
        plan: Plan,
        outputs: dict[str, Any],
        status_str: str,
        completed: bool,
        messages: list[list[Any]],
    ) -> dict[str, Any]:
        meta = {
            n: {"node_id": n, "display_node": n, "parent_node": None, "real_node_id": n}
            for n in outputs
        }
        return {
            "prompt": job.queue_item(),
            "outputs": outputs,
            "status": {"status_str": status_str, "completed": completed, "messages": messages},
            "meta": meta,
        }


def _ms() -> int:
    return int(time.time() * 1000)


# --------------------------------------------------------------------------- app


def _fault(request: Request, status: int) -> Response:
    """An injected failure the way ComfyUI's aiohttp server answers it."""
    headers = {"Retry-After": "1"} if status == 429 else None
    body: dict[str, object] = {
        "error": _error("server_error", f"{status}: simulated failure", request.url.path),
        "node_errors": {},
    }
    return error_json(status, body, headers)


@dataclass(frozen=True)
class Combo:
    """A dropdown input as the simulated server serves it."""

    options: tuple[Any, ...]
    v3: bool  # written ["COMBO", {"options": [...]}] (a V3 node) rather than [[...], {...}]
    spec: list[Any]  # as validate_inputs reports it: [type or choices, settings]


def _combo(class_type: str, name: str) -> Combo | None:
    """The choices of ``class_type``'s input ``name`` when it is a dropdown."""
    info = OBJECT_INFO.get(class_type)
    spec = _input_spec(info, name) if info is not None else None
    if spec is None:
        return None
    folder = FOLDER_INPUTS.get(class_type, {}).get(name)
    if spec[0] == "COMBO":
        options = spec[1].get("options") if len(spec) > 1 else None
        if folder is not None:
            options = folder_files(folder)
        if options is None:
            return None
        return Combo(tuple(options), True, [spec[0], {**spec[1], "options": list(options)}])
    if isinstance(spec[0], list):
        options = folder_files(folder) if folder is not None else tuple(spec[0])
        return Combo(tuple(options), False, [list(options), spec[1] if len(spec) > 1 else {}])
    return None


def _missing_model(node: dict[str, Any]) -> tuple[str, str] | None:
    """``(folder, file)`` when ``node`` loads a model its server does not have: what a
    loader's ``folder_paths.get_full_path_or_raise`` fails on when the node runs."""
    inputs = node.get("inputs") or {}
    for name, folder in FOLDER_INPUTS.get(node["class_type"], {}).items():
        value = inputs.get(name)
        if isinstance(value, str) and value not in folder_files(folder):
            return folder, value
    return None


def _object_info() -> dict[str, Any]:
    """``GET /object_info``: the extract, its models folders filled with this server's."""
    info = copy.deepcopy(OBJECT_INFO)
    for cls, inputs in FOLDER_INPUTS.items():
        for name, folder in inputs.items():
            spec = _input_spec(info[cls], name)
            if spec is None:
                continue
            if spec[0] == "COMBO":
                spec[1]["options"] = list(folder_files(folder))
            else:
                spec[0] = list(folder_files(folder))
    return info


class _BasicAuthProxy:
    """A proxy's Basic-auth gate in front of the app (``SIM_COMFYUI_BASIC_AUTH``): HTTP 401
    with ``WWW-Authenticate`` as nginx answers, and a refused websocket handshake."""

    def __init__(self, app: Any, credentials: str) -> None:
        self.app = app
        self.expected = b"Basic " + base64.b64encode(credentials.encode())

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] in ("http", "websocket") and not scope["path"].startswith("/_sim"):
            given = dict(scope["headers"]).get(b"authorization", b"")
            if not hmac.compare_digest(given, self.expected):
                if scope["type"] == "websocket":
                    await send({"type": "websocket.close", "code": 1008})
                    return
                body = b"<html><head><title>401 Authorization Required</title></head></html>"
                await send(
                    {
                        "type": "http.response.start",
                        "status": 401,
                        "headers": [
                            (b"www-authenticate", b'Basic realm="comfyui"'),
                            (b"content-type", b"text/html"),
                            (b"content-length", str(len(body)).encode()),
                        ],
                    }
                )
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)


def create_app(knobs: Knobs | None = None, config: ComfyConfig | None = None) -> FastAPI:
    """Build the simulator app (fault knobs from ``SIM_COMFYUI_*`` unless given)."""
    knobs = knobs or Knobs.from_env("comfyui")
    sim = SimState(config or ComfyConfig.from_env(), knobs.rng)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        tasks = [asyncio.create_task(sim.worker(i)) for i in range(sim.config.workers)]
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    app = FastAPI(title="ComfyUI simulator", lifespan=lifespan)
    app.state.sim = sim
    if credentials := os.environ.get("SIM_COMFYUI_BASIC_AUTH"):
        app.add_middleware(_BasicAuthProxy, credentials=credentials)
    install_faults(app, knobs, _fault, exempt_prefixes=("/_sim", "/ws"))

    @app.post("/prompt")
    async def post_prompt(request: Request) -> JSONResponse:
        try:
            body = await request.json()
        except ValueError:
            body = None
        if not isinstance(body, dict) or "prompt" not in body:
            return error_json(
                400, {"error": _error("no_prompt", "No prompt provided"), "node_errors": {}}
            )
        prompt = body["prompt"]
        error, node_errors = validate_prompt(
            prompt, v3_combos_at_prompt=sim.config.combo_check == "prompt"
        )
        if error is not None:
            return error_json(400, {"error": error, "node_errors": node_errors})
        # Newer ComfyUI accepts a client-chosen prompt_id so the client can listen before submit.
        prompt_id = str(body.get("prompt_id") or uuid.uuid4())
        extra_raw = body.get("extra_data")
        extra: dict[str, Any] = extra_raw if isinstance(extra_raw, dict) else {}
        client_id = body.get("client_id")
        number = body.get("number")
        if number is not None:
            try:
                number = float(number)
            except (TypeError, ValueError):
                return error_json(
                    400,
                    {
                        "error": _error("invalid_prompt", "number must be a number"),
                        "node_errors": {},
                    },
                )
        job = sim.enqueue(
            prompt,
            prompt_id,
            str(client_id) if client_id else None,
            extra,
            number=number,
            front=bool(body.get("front")),
        )
        return JSONResponse({"prompt_id": prompt_id, "number": job.number, "node_errors": {}})

    @app.get("/prompt")
    async def get_prompt() -> dict[str, Any]:
        return {"exec_info": {"queue_remaining": sim.queue_remaining()}}

    @app.get("/history")
    async def get_history(max_items: int | None = None) -> dict[str, Any]:
        items = list(sim.history.items())
        if max_items is not None:
            items = items[-max_items:] if max_items > 0 else []
        return dict(items)

    @app.get("/history/{prompt_id}")
    async def get_history_one(prompt_id: str) -> dict[str, Any]:
        entry = sim.history.get(prompt_id)
        return {prompt_id: entry} if entry is not None else {}

    @app.post("/history")
    async def post_history(request: Request) -> Response:
        body = await request.json()
        if body.get("clear"):
            sim.history.clear()
        for pid in body.get("delete", []):
            sim.history.pop(str(pid), None)
        return Response(status_code=200)

    @app.get("/view")
    async def view(
        filename: str = "", subfolder: str = "", type_: str = Query("output", alias="type")
    ) -> Response:
        if not filename:
            return Response(status_code=400)
        data = await sim.image(subfolder, filename) if type_ == "output" else None
        if data is None:
            return Response(status_code=404)
        return Response(
            content=data,
            media_type="image/png",
            headers={"Content-Disposition": f'filename="{filename}"'},
        )

    @app.get("/queue")
    async def get_queue() -> dict[str, Any]:
        return {
            "queue_running": [j.queue_item() for j in sim.running.values()],
            "queue_pending": [j.queue_item() for j in sim.pending.values()],
        }

    @app.post("/queue")
    async def post_queue(request: Request) -> Response:
        body = await request.json()
        if body.get("clear"):
            sim.delete_pending(list(sim.pending))
        if isinstance(body.get("delete"), list):
            sim.delete_pending([str(p) for p in body["delete"]])
        return Response(status_code=200)

    @app.post("/interrupt")
    async def interrupt(request: Request) -> Response:
        raw = await request.body()
        body = json.loads(raw) if raw.strip() else {}
        target = body.get("prompt_id") if isinstance(body, dict) else None
        for job in sim.running.values():
            if target is None or job.prompt_id == target:
                job.interrupted = True
        return Response(status_code=200)

    @app.get("/system_stats")
    async def system_stats() -> dict[str, Any]:
        gib = 1024**3
        return {
            "system": {
                "os": "posix" if sys.platform != "win32" else "nt",
                "ram_total": 64 * gib,
                "ram_free": 48 * gib,
                "comfyui_version": COMFYUI_VERSION,
                # What ComfyUI 0.3.64's requirements.txt pins (server.py reads them from there).
                "required_frontend_version": "1.27.10",
                "installed_templates_version": "0.1.95",
                "required_templates_version": "0.1.95",
                "python_version": sys.version,
                "pytorch_version": "2.5.1+cu124 (simulated)",
                "embedded_python": False,
                "argv": ["main.py", "--listen"],
            },
            "devices": [
                {
                    "name": f"cuda:{i} Simulated RTX 4090 : cudaMallocAsync",
                    "type": "cuda",
                    "index": i,
                    "vram_total": 24 * gib,
                    "vram_free": 20 * gib,
                    "torch_vram_total": 8 * gib,
                    "torch_vram_free": 6 * gib,
                }
                for i in range(sim.config.workers)
            ],
        }

    @app.get("/object_info")
    async def object_info() -> dict[str, Any]:
        return _object_info()

    @app.get("/object_info/{node_class}")
    async def object_info_one(node_class: str) -> dict[str, Any]:
        info = _object_info()
        return {node_class: info[node_class]} if node_class in info else {}

    @app.get("/_sim/books")
    async def books() -> dict[str, int]:
        """What the server did; ``busy_ms`` is execution time summed over its GPUs."""
        return {
            "prompts_queued": sim.books["prompts_queued"],
            "executed": sim.books["executed"],
            "failed": sim.books["failed"],
            "interrupted": sim.books["interrupted"],
            "deleted": sim.books["deleted"],
            "pending": len(sim.pending),
            "running": len(sim.running),
            "busy_ms": round(sim.busy_s * 1000),
        }

    @app.get("/_sim/comfyui")
    async def get_sim_config() -> dict[str, Any]:
        c = sim.config
        return {
            "workers": c.workers,
            "render_ms": c.render_ms,
            "exec_failure_rate": c.exec_failure_rate,
            "history_max": c.history_max,
            "combo_check": c.combo_check,
        }

    @app.post("/_sim/comfyui", response_model=None)
    async def set_sim_config(request: Request) -> dict[str, Any] | JSONResponse:
        body = await request.json()
        for key in ("render_ms", "exec_failure_rate"):
            if key in body:
                setattr(sim.config, key, float(body[key]))
        if "combo_check" in body:
            if body["combo_check"] not in COMBO_CHECKS:
                return JSONResponse({"error": f"combo_check: one of {COMBO_CHECKS}"}, 400)
            sim.config.combo_check = body["combo_check"]
        return await get_sim_config()

    @app.websocket("/ws")
    async def ws(websocket: WebSocket, clientId: str | None = None) -> None:
        await websocket.accept()
        sid = clientId or uuid.uuid4().hex
        outbox: asyncio.Queue[str | None] = asyncio.Queue(maxsize=WS_OUTBOX_MAX)
        sim.sockets[sid].add(outbox)
        outbox.put_nowait(json.dumps({"type": "status", "data": {**sim.status_data(), "sid": sid}}))

        async def pump() -> None:
            while (text := await outbox.get()) is not None:
                await websocket.send_text(text)

        async def drain() -> None:
            # Clients may send nothing; reading is how we learn they went away.
            with contextlib.suppress(WebSocketDisconnect):
                while True:
                    await websocket.receive_text()

        tasks = [asyncio.create_task(pump()), asyncio.create_task(drain())]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            sim.sockets[sid].discard(outbox)
            if not sim.sockets[sid]:
                sim.sockets.pop(sid, None)
            # Best effort: the peer may already be gone, which each server backend reports its way.
            with contextlib.suppress(Exception):
                await websocket.close()

    return app


def main() -> None:
    """Entry point: ``python -m simulators.comfyui [--host H] [--port N]``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8188)
    args = parser.parse_args()
    serve(create_app(), args.host, args.port)


if __name__ == "__main__":
    main()
