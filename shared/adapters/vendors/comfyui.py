"""The ComfyUI client of the generator stage: one workflow in, one PNG out.

A render fills a copy of an API-format workflow (prompt texts, seed, size), waits for its turn in
the :class:`~shared.adapters.vendors.gpu.GpuScheduler` (priority order, a bounded queue per
backend), queues it with ``POST /prompt`` on the backend the scheduler chose (``front`` for the high
band), waits for it to finish and downloads the image through ``/history`` and ``/view``.

Time limits: ``timeout_s`` counts from ``execution_start`` (time on the GPU), ``queue_timeout_s``
from submission to that start. Without websocket events the start is not seen, so both budgets
count from submission. A prompt past its time is removed from the queue, or interrupted if it is
running, so it does not keep the GPU busy.

Waiting is event driven: one websocket per backend (one ``client_id`` per client instance)
carries the execution events of every in-flight render and wakes the matching waiter by
``prompt_id``. The websocket is an accelerator, not a dependency: while it is down renders poll
``/history``, and even while it is up each render re-checks ``/history`` now and then, so a
message lost across a reconnect cannot stall a render until its timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import logging
import reprlib
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NotRequired, TypedDict, TypeVar, cast

import httpx
from PIL import Image
from pydantic import BaseModel, Field, ValidationError, field_validator
from websockets.asyncio.client import connect as ws_connect

from shared.adapters.vendors.answers import read_answer
from shared.adapters.vendors.comfyui_models import (
    ExecutionFailure,
    HistoryEntry,
    HistoryStatus,
    NodeOutput,
    PromptAccepted,
)
from shared.adapters.vendors.gpu import HIGH_BAND, BackendSlots, GpuScheduler
from shared.platform.aio import cancel_and_wait
from shared.platform.errors import (
    ConfigError,
    PermanentError,
    PodError,
    RetryableError,
    VendorTimeout,
    classify_http_status,
    parse_retry_after,
)
from shared.platform.http import async_client
from shared.platform.logs import split_credentials
from shared.platform.settings import PodSettings

logger = logging.getLogger(__name__)
T = TypeVar("T")

# Tries of an idempotent read (/history, /view) before its error reaches the runner.
GET_ATTEMPTS = 3

VENDOR = "comfyui"
DEFAULT_WORKFLOW = Path(__file__).resolve().parent / "workflows" / "sdxl_txt2img.json"

# Sampler class -> the input that holds its seed.
SAMPLER_SEED_INPUT = {"KSampler": "seed", "KSamplerAdvanced": "noise_seed"}
# Text encoder class -> the inputs that hold its prompt text.
TEXT_INPUTS = {"CLIPTextEncode": ("text",), "CLIPTextEncodeSDXL": ("text_g", "text_l")}
LATENT_SOURCES = frozenset({"EmptyLatentImage", "EmptySD3LatentImage"})
# ComfyUI rejects seeds outside 0..2**64-1; callers hash job ids into seeds of any size.
SEED_MASK = 0xFFFF_FFFF_FFFF_FFFF
# Exception types of a failed node that mean "your inputs are wrong", not "the GPU hiccupped".
PERMANENT_EXCEPTIONS = frozenset(
    {"ValueError", "TypeError", "KeyError", "FileNotFoundError", "AssertionError"}
)
WS_MAX_MESSAGE = 64 * 1024 * 1024  # binary preview frames can be large; we skip them anyway


_BACKGROUND: set[asyncio.Task[None]] = set()


def _background(coro: Any) -> None:
    """Run ``coro`` to its end even though its caller is being cancelled."""
    task = asyncio.ensure_future(coro)
    _BACKGROUND.add(task)
    task.add_done_callback(_BACKGROUND.discard)


@dataclass(frozen=True)
class RenderedImage:
    """One finished render."""

    data: bytes
    width: int
    height: int
    backend: str
    prompt_id: str


@dataclass(frozen=True)
class Device:
    """One compute device a server reports (``/system_stats`` ``devices``)."""

    name: str
    type: str  # "cuda", "cpu", "mps", ...
    vram_total: int | None
    vram_free: int | None


@dataclass(frozen=True)
class SystemStats:
    """What ``GET /system_stats`` says of a server (server.py ``system_stats``)."""

    comfyui_version: str | None
    devices: tuple[Device, ...]

    @classmethod
    def parse(cls, body: object) -> SystemStats:
        """Read the server's answer; ValueError when it is not one."""
        system = body.get("system") if isinstance(body, dict) else None
        devices = body.get("devices") if isinstance(body, dict) else None
        if not isinstance(system, dict) or not isinstance(devices, list):
            raise ValueError(f"not a /system_stats answer: {reprlib.repr(body)}")
        found = []
        for raw in devices:
            if not isinstance(raw, dict):
                raise ValueError(f"a device is not an object: {reprlib.repr(raw)}")
            vram = [raw.get(k) for k in ("vram_total", "vram_free")]
            found.append(
                Device(
                    name=str(raw.get("name", "?")),
                    type=str(raw.get("type", "?")),
                    vram_total=vram[0] if isinstance(vram[0], int) else None,
                    vram_free=vram[1] if isinstance(vram[1], int) else None,
                )
            )
        version = system.get("comfyui_version")
        return cls(str(version) if version is not None else None, tuple(found))

    @property
    def gpus(self) -> int:
        """Prompts the server runs at once: one per GPU (at least one, a CPU-only server's)."""
        return max(1, sum(d.type != "cpu" for d in self.devices) or len(self.devices))


@dataclass(frozen=True)
class QueueState:
    """``GET /queue``: prompts running and waiting on a server (ours and anyone else's)."""

    running: int
    pending: int
    # The running prompts' ids (a queue item is [number, prompt_id, prompt, extra, outputs]).
    running_ids: tuple[str, ...] = ()

    @classmethod
    def parse(cls, body: object) -> QueueState:
        """Read the server's answer; ValueError when it is not one."""
        if isinstance(body, dict):
            running, pending = body.get("queue_running"), body.get("queue_pending")
            if isinstance(running, list) and isinstance(pending, list):
                ids = tuple(
                    item[1]
                    for item in running
                    if isinstance(item, list) and len(item) > 1 and isinstance(item[1], str)
                )
                return cls(len(running), len(pending), ids)
        raise ValueError(f"not a /queue answer: {reprlib.repr(body)}")


# --------------------------------------------------------------------------- workflow filling


class WorkflowNode(TypedDict):
    """A node of an API-format workflow (the body of ComfyUI's ``POST /prompt``, as its
    ``execution.py`` reads it): the node class, and its inputs, each a literal value or a
    link ``[node_id, output_index]`` to another node's output."""

    class_type: str
    inputs: dict[str, object]
    _meta: NotRequired[dict[str, object]]  # the editor's title; the server ignores it


# node id -> node, as ComfyUI keys them (ids are strings; never assumed here).
Workflow = dict[str, WorkflowNode]


def _nodes_problem(data: object) -> str | None:
    """What keeps ``data`` from being an API-format workflow, or None."""
    if not isinstance(data, dict):
        return "not an API-format object"
    for node_id, node in data.items():
        if not isinstance(node, dict):
            return "not an API-format object of nodes"
        if not isinstance(node.get("class_type"), str):
            return f"node {node_id} has no class_type"
        if not isinstance(node.get("inputs", {}), dict):
            return f"node {node_id}: its inputs are not an object"
    return None


def _link_target(workflow: Workflow, link: object, what: str) -> str:
    if not (isinstance(link, list) and len(link) == 2 and str(link[0]) in workflow):
        raise PermanentError(f"workflow: {what} is not a link to an existing node", vendor=VENDOR)
    return str(link[0])


def _follow(workflow: Workflow, link: object, wanted: frozenset[str], via: str, what: str) -> str:
    """Walk ``link`` upstream through ``via`` inputs to the first node of a ``wanted`` class."""
    for _ in range(16):  # bounded: a cyclic graph must not hang the worker
        node_id = _link_target(workflow, link, what)
        node = workflow[node_id]
        if node.get("class_type") in wanted:
            return node_id
        link = node.get("inputs", {}).get(via)
        if link is None:
            break
    raise PermanentError(
        f"workflow: {what} does not lead to a {'/'.join(sorted(wanted))} node", vendor=VENDOR
    )


def _with_own_inputs(node: WorkflowNode) -> WorkflowNode:
    copy = node.copy()
    copy["inputs"] = dict(node.get("inputs") or {})
    return copy


def fill_workflow(
    workflow: Workflow,
    *,
    prompt: str,
    negative_prompt: str,
    seed: int,
    width: int,
    height: int,
    output_size: tuple[int, int] | None = None,
) -> Workflow:
    """A copy of ``workflow`` with texts, seed and sizes set, found by graph links.

    Every sampler gets the seed; the text encoders its ``positive``/``negative`` inputs lead to
    get the texts; the empty latent its ``latent_image`` leads to (directly or through an earlier
    sampler, as in base+refiner graphs) gets the size. ``output_size`` (the print size) goes to
    every ``ImageScale`` node, which follows the upscale model in the bundled workflow; a
    workflow without one cannot make prints of that size. Node ids are never assumed.
    """
    if not isinstance(workflow, dict) or not all(isinstance(n, dict) for n in workflow.values()):
        raise PermanentError("workflow: not an API-format object of nodes", vendor=VENDOR)
    # Only the nodes' input maps are written below: copying those is enough (a deep copy of
    # the whole graph was a tenth of the generator's CPU per render).
    wf = {k: _with_own_inputs(n) for k, n in workflow.items()}
    samplers = [k for k, n in wf.items() if n.get("class_type") in SAMPLER_SEED_INPUT]
    if not samplers:
        raise PermanentError(
            "workflow: no KSampler/KSamplerAdvanced node to set the seed on", vendor=VENDOR
        )
    latents: set[str] = set()
    encoders = frozenset(TEXT_INPUTS)
    for sid in samplers:
        inputs = wf[sid].setdefault("inputs", {})
        inputs[SAMPLER_SEED_INPUT[wf[sid]["class_type"]]] = seed & SEED_MASK
        for key, text in (("positive", prompt), ("negative", negative_prompt)):
            enc = _follow(wf, inputs.get(key), encoders, "conditioning", f"sampler {sid} {key}")
            for name in TEXT_INPUTS[wf[enc]["class_type"]]:
                wf[enc]["inputs"][name] = text
        with contextlib.suppress(PermanentError):  # a refiner's latent comes from a sampler
            latents.add(
                _follow(wf, inputs.get("latent_image"), LATENT_SOURCES, "latent_image", "latent")
            )
    if not latents:
        raise PermanentError(
            "workflow: no sampler's latent_image leads to an EmptyLatentImage node", vendor=VENDOR
        )
    for lid in latents:
        wf[lid]["inputs"]["width"] = width
        wf[lid]["inputs"]["height"] = height
    # Without a print size the art leaves at the sampled size, whatever the scaler's default.
    target = output_size or (width, height)
    scalers = [k for k, n in wf.items() if n.get("class_type") == "ImageScale"]
    if target != (width, height) and not scalers:
        raise PermanentError(
            f"workflow: no ImageScale node to bring the art to its print size "
            f"{target[0]}x{target[1]} (the bundled workflow has one after its "
            f"upscale model)",
            vendor=VENDOR,
        )
    for sid in scalers:
        wf[sid]["inputs"]["width"], wf[sid]["inputs"]["height"] = target
    return wf


def input_choices(spec: object) -> tuple[Any, ...] | None:
    """The values a dropdown input allows, read from its ``/object_info`` spec; None for an
    input that is not a dropdown, or whose choices are not listed there (a remote dropdown).

    ComfyUI writes a dropdown two ways (server.py ``node_info``): a V1 node's as
    ``[[choice, ...], {...}]`` (the dict may be absent), a V3 node's (``comfy_api`` ``Combo``,
    the core ``UpscaleModelLoader`` among them) and a V1 node's written the newer way as
    ``["COMBO", {"options": [choice, ...], ...}]``. Anything else raises ValueError: the
    answer is the server's, and a check that skipped what it cannot read would pass a
    workflow it never looked at.
    """
    if not isinstance(spec, list) or not spec:
        raise ValueError(f"not an input description: {reprlib.repr(spec)}")
    kind = spec[0]
    extra = spec[1] if len(spec) > 1 else {}
    if not isinstance(extra, dict):
        raise ValueError(f"its settings are not an object: {reprlib.repr(extra)}")
    if isinstance(kind, list):
        return tuple(kind)
    if not isinstance(kind, str):
        raise ValueError(f"its type is neither a name nor a list: {reprlib.repr(kind)}")
    if kind != "COMBO" or extra.get("options") is None:
        return None
    options = extra["options"]
    if not isinstance(options, list):
        raise ValueError(f"its options are not a list: {reprlib.repr(options)}")
    return tuple(options)


def workflow_problems(workflow: Workflow, object_info: object) -> list[str]:
    """What a server's ``/object_info`` says it lacks to run ``workflow``: node classes, and
    values outside an input's choices (its checkpoints, upscale models, samplers, ...), in
    either of ComfyUI's dropdown forms (:func:`input_choices`). A description it cannot read
    is a problem too, named as the server's."""
    if not isinstance(object_info, dict):
        return ["/object_info did not answer an object"]
    problems: list[str] = []
    for node_id, node in workflow.items():
        cls = str(node.get("class_type"))
        if cls not in object_info:
            problems.append(f"node {node_id}: {cls} is not installed")
            continue
        spec = object_info[cls]
        declared = spec.get("input") if isinstance(spec, dict) else spec
        sections = (
            [declared.get("optional", {}), declared.get("required", {})]
            if isinstance(declared, dict)
            else []
        )
        if len(sections) != 2 or not all(isinstance(s, dict) for s in sections):
            problems.append(
                f"node {node_id}: /object_info describes the inputs of {cls} in a form not "
                f"understood: {reprlib.repr(declared)}"
            )
            continue
        inputs = {**sections[0], **sections[1]}
        for name, value in (node.get("inputs") or {}).items():
            if isinstance(value, list) or name not in inputs:  # a link, or an input it ignores
                continue
            try:
                choices = input_choices(inputs[name])
            except ValueError as exc:
                problems.append(f"node {node_id} {cls}: /object_info input {name}: {exc}")
                continue
            if choices is not None and value not in choices:
                shown = ", ".join(str(o) for o in choices[:8]) or "nothing"
                if len(choices) > 8:
                    shown += f" and {len(choices) - 8} more"
                problems.append(
                    f"node {node_id} {cls}: {name} {value!r} is not on the server (it has: {shown})"
                )
    return problems


# --------------------------------------------------------------------------- error mapping


def _describe_rejection(body: object) -> tuple[str, str | None]:
    """ComfyUI's 400 body from /prompt as one readable line, plus its error type."""
    if not isinstance(body, dict):
        return str(body)[:500], None
    error = body.get("error")
    parts: list[str] = []
    code = None
    if isinstance(error, dict):
        code = error.get("type")
        parts.append(str(error.get("message", "")))
        if error.get("details"):
            parts.append(str(error["details"]))
    elif error:
        parts.append(str(error))
    node_errors = body.get("node_errors")
    if isinstance(node_errors, dict):
        for node_id, info in list(node_errors.items())[:5]:
            errs = info.get("errors", []) if isinstance(info, dict) else []
            detail = "; ".join(f"{e.get('message', '')} ({e.get('details', '')})" for e in errs)
            cls = info.get("class_type", "?") if isinstance(info, dict) else "?"
            parts.append(f"node {node_id} {cls}: {detail}")
    return " | ".join(p for p in parts if p) or "rejected", code


def execution_error(data: ExecutionFailure, *, backend: str) -> PodError:
    """Map an ``execution_error`` payload onto retryable (GPU trouble) or permanent (bad input)."""
    exc_type = data.exception_type or ""
    message = (
        f"ComfyUI execution failed at node {data.node_id} ({data.node_type}): "
        f"{exc_type}: {data.exception_message or ''} "
        f"prompt_id={data.prompt_id} backend={backend}"
    )
    short = exc_type.rsplit(".", 1)[-1]
    permanent = short in PERMANENT_EXCEPTIONS or "Validation" in short
    cls = PermanentError if permanent else RetryableError
    return cls(message, vendor=VENDOR, code=exc_type or "execution_error")


def _http_error(resp: httpx.Response, what: str, backend: str) -> PodError:
    cls = classify_http_status(resp.status_code)
    try:
        body: object = resp.json()
    except ValueError:
        body = resp.text
    detail, code = _describe_rejection(body)
    retry_after = parse_retry_after(resp.headers.get("Retry-After"))
    return cls(
        f"{what} failed: {detail} backend={backend}",
        vendor=VENDOR,
        status=resp.status_code,
        code=code,
        retry_after=retry_after,
    )


def _failure(event: str, data: Mapping[str, object]) -> ExecutionFailure:
    """An execution failure event's data; fields of another shape are left unknown (the
    failure itself is what matters)."""
    try:
        return ExecutionFailure.model_validate({**data, "event": event})
    except ValidationError:
        return ExecutionFailure(event=event, prompt_id=str(data.get("prompt_id")))


M = TypeVar("M", bound=BaseModel)


def _parse(model: type[M], body: object, what: str, backend: _Backend) -> M:
    """ComfyUI's answer as ``model`` (:func:`~shared.adapters.vendors.answers.read_answer`; the
    error names the backend)."""
    return read_answer(model, body, vendor=VENDOR, what=f"{what} backend={backend.url}")


# --------------------------------------------------------------------------- backends


@dataclass
class _Waiter:
    """What a render waits on; the websocket reader fills it in and sets ``wake``."""

    wake: asyncio.Event = field(default_factory=asyncio.Event)
    finished: bool = False
    error: ExecutionFailure | None = None
    started_at: float | None = None  # monotonic time of its execution_start event
    outputs: dict[str, NodeOutput] = field(default_factory=dict)  # from `executed` events


class _Backend:
    """One ComfyUI server: its HTTP client, its shared websocket and the renders on it."""

    def __init__(
        self,
        url: str,
        client_id: str,
        http: httpx.AsyncClient,
        scheduler: GpuScheduler,
        ws_base: str | None = None,
    ) -> None:
        """``url`` names the server in logs, errors and events: it carries no credentials.
        ``ws_base`` is the configured URL, credentials included (the websocket handshake sends
        them as Basic auth); the HTTP client has them as its ``auth``."""
        self.url = url.rstrip("/")
        scheme, rest = (ws_base or self.url).rstrip("/").split("://", 1)
        self.ws_url = f"{'wss' if scheme == 'https' else 'ws'}://{rest}/ws?clientId={client_id}"
        self.http = http
        self.scheduler = scheduler
        self.slots = next(b for b in scheduler.backends if b.url == self.url)
        self.waiters: dict[str, _Waiter] = {}
        self.ws_up = False
        self._ws_task: asyncio.Task[None] | None = None
        self._first_attempt: asyncio.Event | None = None

    async def ensure_websocket(self, wait_s: float) -> None:
        """Start the reader once; on its very first connect wait up to ``wait_s`` for it."""
        if self._ws_task is None:
            self._first_attempt = asyncio.Event()
            self._ws_task = asyncio.create_task(self._ws_loop(), name=f"comfyui-ws {self.url}")
        if self._first_attempt is not None and not self._first_attempt.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._first_attempt.wait(), wait_s)

    async def _ws_loop(self) -> None:
        backoff = 0.2
        while True:
            try:
                async with ws_connect(
                    self.ws_url, open_timeout=5, max_size=WS_MAX_MESSAGE, compression=None
                ) as ws:
                    self.ws_up = True
                    backoff = 0.2
                    if self._first_attempt is not None:
                        self._first_attempt.set()
                    logger.info("comfyui websocket connected backend=%s", self.url)
                    async for raw in ws:
                        if isinstance(raw, str):  # binary frames are previews: not needed
                            self._dispatch(raw)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                logger.warning(
                    "comfyui websocket down backend=%s error=%s", self.url, type(exc).__name__
                )
            finally:
                self.ws_up = False
                self.scheduler.forget_remote(self.slots)
                if self._first_attempt is not None:
                    self._first_attempt.set()
                # Events may have been lost: let every waiter fall back to polling /history.
                for waiter in self.waiters.values():
                    waiter.wake.set()
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 5.0)

    def _dispatch(self, raw: str) -> None:
        try:
            msg = json.loads(raw)
            kind, data = msg.get("type"), msg.get("data") or {}
            if kind == "status":
                remaining = data["status"]["exec_info"]["queue_remaining"]
                self.scheduler.observe(self.slots, int(remaining))
                return
            waiter = self.waiters.get(str(data.get("prompt_id")))
        except (ValueError, AttributeError, KeyError, TypeError):
            return
        if waiter is None:
            return
        if kind == "execution_start":
            waiter.started_at = time.monotonic()
            return
        if kind == "executed":
            # The images an output node saved: with execution_success, all /history would say.
            output = data.get("output")
            if isinstance(output, dict) and data.get("node") is not None:
                with contextlib.suppress(ValidationError):  # not an output we can read
                    waiter.outputs[str(data["node"])] = NodeOutput.model_validate(output)
            return
        if kind in ("execution_error", "execution_interrupted"):
            waiter.error = _failure(kind, data)
        elif kind == "execution_success" or (kind == "executing" and data.get("node") is None):
            waiter.finished = True
        else:
            return  # progress and per-node events: nothing to wake up for
        waiter.wake.set()

    async def aclose(self) -> None:
        if self._ws_task is not None:
            await cancel_and_wait(self._ws_task)
        await self.http.aclose()


# --------------------------------------------------------------------------- client


class ComfyUIClient:
    """Renders images on a pool of ComfyUI servers in priority order; safe for hundreds of
    concurrent callers (they wait in the scheduler, not in ComfyUI's queue)."""

    def __init__(
        self,
        *,
        base_urls: list[str],
        workflow: Workflow,
        timeout_s: float = 600.0,
        queue_timeout_s: float = 600.0,
        use_websocket: bool = True,
        poll_interval_s: float = 0.25,
        parallelism: int | None = None,
        queue_factor: int = 2,
    ) -> None:
        """``parallelism`` is the prompts one server runs at once (None: learn it from
        ``/system_stats``, one per GPU device); each backend holds at most ``parallelism x
        queue_factor`` of our prompts, running and queued."""
        if not base_urls:
            raise ValueError("ComfyUIClient needs at least one base URL")
        if queue_factor < 1:
            raise ValueError("queue_factor must be >= 1")
        self.workflow = workflow
        self.timeout_s = timeout_s
        self.queue_timeout_s = queue_timeout_s
        self.use_websocket = use_websocket
        self.poll_interval_s = poll_interval_s
        self.queue_factor = queue_factor
        self._configured_parallelism = parallelism
        # With the websocket up, still re-check /history this often in case an event was lost.
        self.safety_poll_s = max(2.0, poll_interval_s * 20)
        self.client_id = uuid.uuid4().hex
        # A server behind a proxy may be configured as https://user:password@host: the
        # credentials go in a header, and only the bare URL is ever logged, raised or recorded.
        configured = [u.rstrip("/") for u in base_urls]
        split = [split_credentials(u) for u in configured]
        urls = [bare for bare, _ in split]
        start = parallelism or 1
        self.scheduler = GpuScheduler(
            [BackendSlots(u, parallelism=start, depth=start * queue_factor) for u in urls]
        )
        per_request = httpx.Timeout(min(60.0, timeout_s), connect=5.0, pool=60.0)
        # One render has at most two requests open at once; the scheduler bounds the renders.
        limits = httpx.Limits(max_connections=32, max_keepalive_connections=16)
        self._backends = [
            _Backend(
                bare,
                self.client_id,
                async_client(
                    timeout=per_request,
                    limits=limits,
                    auth=httpx.BasicAuth(*credentials) if credentials else None,
                ),
                self.scheduler,
                ws_base=raw,
            )
            for raw, (bare, credentials) in zip(configured, split, strict=True)
        ]
        self._by_url = {b.url: b for b in self._backends}
        self._learned_at = 0.0 if parallelism is None else float("inf")
        self._learn_lock = asyncio.Lock()

    @classmethod
    def load_workflow(cls, path: str | Path | None) -> Workflow:
        """Read an API-format workflow JSON; None means the bundled SDXL text-to-image one."""
        file = Path(path) if path is not None else DEFAULT_WORKFLOW
        try:
            data = json.loads(file.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise PermanentError(f"workflow {file}: cannot load: {exc}", vendor=VENDOR) from exc
        if problem := _nodes_problem(data):
            raise PermanentError(f"workflow {file}: {problem}", vendor=VENDOR)
        return cast(Workflow, data)

    async def check_workflow(self) -> None:
        """Fail at start, naming what is missing, when a server cannot run the workflow: a node
        class it lacks, or a value not in its lists (a checkpoint, an upscale model, a sampler).
        Otherwise every render would fail the same way. A server that does not answer (or
        answers 5xx) is only logged: it may come up later. One that answers what no ComfyUI
        does (a 404, a proxy's page) is a wrong URL, said at start too."""
        for backend in self._backends:
            try:
                async with asyncio.timeout(10.0):
                    problems = await self.missing_for_workflow(backend.url)
            except (RetryableError, TimeoutError) as exc:
                logger.warning("comfyui workflow not checked backend=%s error=%s", backend.url, exc)
                continue
            except PermanentError as exc:
                raise ConfigError(
                    f"COMFYUI_API_URL: {backend.url} is not a ComfyUI server as far as "
                    f"/object_info tells: {exc.message}"
                ) from exc
            if problems:
                raise ConfigError(
                    f"COMFYUI_WORKFLOW_PATH: {backend.url} cannot run the workflow: "
                    + "; ".join(problems[:5])
                )

    async def learn_capacity(self) -> None:
        """Read each backend's GPU count from ``/system_stats`` (once; again after a failure,
        at most every 30 s). A backend that does not answer keeps its current guess."""
        if time.monotonic() - self._learned_at < 30.0:
            return
        async with self._learn_lock:
            if time.monotonic() - self._learned_at < 30.0:
                return
            results = await asyncio.gather(
                *(self._device_count(b) for b in self._backends), return_exceptions=True
            )
            all_ok = True
            for backend, result in zip(self._backends, results, strict=True):
                if not isinstance(result, int):
                    all_ok = False
                    continue
                backend.slots.parallelism = result
                backend.slots.depth = result * self.queue_factor
                logger.info(
                    "comfyui capacity learned backend=%s parallelism=%d depth=%d",
                    backend.url, result, backend.slots.depth,
                )  # fmt: skip
            self._learned_at = float("inf") if all_ok else time.monotonic()
            self.scheduler.dispatch()

    async def _device_count(self, backend: _Backend) -> int:
        async with asyncio.timeout(5.0):
            return (await self._read(backend, "/system_stats", SystemStats.parse)).gpus

    @property
    def urls(self) -> list[str]:
        """The servers of the pool, as configured."""
        return [b.url for b in self._backends]

    async def system_stats(self, url: str) -> SystemStats:
        """``GET /system_stats`` of one server: its version and devices."""
        return await self._read(self._by_url[url.rstrip("/")], "/system_stats", SystemStats.parse)

    async def queue_state(self, url: str) -> QueueState:
        """``GET /queue`` of one server: how many prompts run and wait there."""
        return await self._read(self._by_url[url.rstrip("/")], "/queue", QueueState.parse)

    async def missing_for_workflow(self, url: str) -> list[str]:
        """What one server lacks to run the workflow (:func:`workflow_problems`)."""
        info = await self._read(self._by_url[url.rstrip("/")], "/object_info", lambda b: b)
        return workflow_problems(self.workflow, info)

    async def _read(self, backend: _Backend, path: str, parse: Callable[[object], T]) -> T:
        """One GET whose JSON answer ``parse`` reads; an answer it refuses is the server's
        fault, said as such."""
        resp = await self._request_once(backend, "GET", path, f"ComfyUI GET {path}")
        try:
            return parse(resp.json())
        except ValueError as exc:
            raise PermanentError(
                f"ComfyUI GET {path} answered something else than ComfyUI does: {exc} "
                f"backend={backend.url}",
                vendor=VENDOR,
            ) from exc

    async def render(
        self,
        *,
        prompt: str,
        negative_prompt: str,
        seed: int,
        width: int = 1024,
        height: int = 1024,
        output_size: tuple[int, int] | None = None,
        job_id: str | None = None,
        band: int = 1,
        order: tuple[Any, ...] = (),
    ) -> RenderedImage:
        """Render one image; raises VendorTimeout, RetryableError or PermanentError.

        ``band`` (0 = high) and then ``order`` (e.g. the job's age and the image index) decide
        when it reaches a GPU relative to every other render of this client.
        """
        wf = fill_workflow(
            self.workflow,
            prompt=prompt,
            negative_prompt=negative_prompt,
            seed=seed,
            width=width,
            height=height,
            output_size=output_size,
        )
        await self.learn_capacity()
        slots = await self.scheduler.acquire(band, order)
        backend = self._by_url[slots.url]
        # Chosen by us and registered before submitting, so no event can arrive unclaimed.
        prompt_id = str(uuid.uuid4())
        waiter = _Waiter()
        backend.waiters[prompt_id] = waiter
        holding = True
        submitted = False
        started = time.monotonic()
        try:
            if self.use_websocket:
                await backend.ensure_websocket(2.0)
            prompt_id = await self._submit(
                backend, wf, prompt_id, waiter, job_id, front=band == HIGH_BAND
            )
            submitted = True
            entry = await self._wait(backend, prompt_id, waiter, time.monotonic(), job_id)
            # Finished on the GPU: the next render may go there while we download.
            holding = False
            self.scheduler.release(slots)
            image = await self._download(backend, entry, prompt_id)
        except asyncio.CancelledError:
            if submitted:
                # A sibling failed or we are shutting down: free the GPU for others.
                _background(self._cancel_prompt(backend, prompt_id, waiter))
            raise
        finally:
            if holding:
                self.scheduler.release(slots)
            backend.waiters.pop(prompt_id, None)
        logger.info(
            "comfyui render done job_id=%s prompt_id=%s backend=%s size=%dx%d bytes=%d ms=%d",
            job_id, prompt_id, backend.url, image.width, image.height, len(image.data),
            (time.monotonic() - started) * 1000,
        )  # fmt: skip
        return image

    async def _request(
        self, backend: _Backend, method: str, path: str, what: str, **kwargs: Any
    ) -> httpx.Response:
        """An HTTP call; a GET that fails transiently is tried again a few times.

        Reads are safe to repeat and cheap, whereas a failure here would make the runner
        redo the whole job (briefs and every image) from its delay topic.
        """
        attempt = 1
        while True:
            try:
                return await self._request_once(backend, method, path, what, **kwargs)
            except PodError as exc:
                if method != "GET" or not exc.retryable or attempt >= GET_ATTEMPTS:
                    raise
                delay = min(5.0, exc.retry_after or 0.2 * 2 ** (attempt - 1))
                logger.info(
                    "comfyui read retried backend=%s path=%s attempt=%d delay_s=%.2f error=%s",
                    backend.url, path, attempt, delay, exc.describe(),
                )  # fmt: skip
                await asyncio.sleep(delay)
                attempt += 1

    async def _request_once(
        self, backend: _Backend, method: str, path: str, what: str, **kwargs: Any
    ) -> httpx.Response:
        """One HTTP call; transport failures become retryable errors, >=400 mapped by status."""
        try:
            resp = await backend.http.request(method, f"{backend.url}{path}", **kwargs)
        except httpx.TimeoutException as exc:
            raise VendorTimeout(
                f"{what} timed out backend={backend.url}: {type(exc).__name__}", vendor=VENDOR
            ) from exc
        except httpx.TransportError as exc:
            backend.slots.unhealthy_until = time.monotonic() + 5.0
            raise RetryableError(
                f"{what} failed backend={backend.url}: {type(exc).__name__}: {exc}", vendor=VENDOR
            ) from exc
        if resp.status_code >= 400:
            raise _http_error(resp, what, backend.url)
        return resp

    async def _submit(
        self,
        backend: _Backend,
        wf: Workflow,
        prompt_id: str,
        waiter: _Waiter,
        job_id: str | None,
        *,
        front: bool = False,
    ) -> str:
        body: dict[str, object] = {
            "prompt": wf,
            "client_id": self.client_id,
            "prompt_id": prompt_id,
        }
        if front:
            body["front"] = True
        resp = await self._request(backend, "POST", "/prompt", "ComfyUI POST /prompt", json=body)
        answer = _parse(PromptAccepted, resp.json(), "ComfyUI POST /prompt", backend)
        got = answer.prompt_id or prompt_id
        if got != prompt_id:
            # An older ComfyUI ignores client-chosen ids: listen under the one it assigned.
            backend.waiters.pop(prompt_id, None)
            backend.waiters[got] = waiter
        if answer.node_errors:
            logger.warning(
                "comfyui prompt has node errors job_id=%s prompt_id=%s backend=%s errors=%s",
                job_id, got, backend.url, _describe_rejection(answer.model_dump())[0],
            )  # fmt: skip
        logger.debug("comfyui queued job_id=%s prompt_id=%s backend=%s", job_id, got, backend.url)
        return got

    async def _history(self, backend: _Backend, prompt_id: str) -> HistoryEntry | None:
        resp = await self._request(backend, "GET", f"/history/{prompt_id}", "ComfyUI GET /history")
        entry = resp.json().get(prompt_id)
        if not isinstance(entry, dict):
            return None
        return _parse(HistoryEntry, entry, "ComfyUI GET /history", backend)

    def _deadline(self, waiter: _Waiter, submitted_at: float) -> float:
        """When the prompt must be finished: from its start when seen, else from submission."""
        if waiter.started_at is not None:
            return waiter.started_at + self.timeout_s
        return submitted_at + self.queue_timeout_s + self.timeout_s

    async def _wait(
        self,
        backend: _Backend,
        prompt_id: str,
        waiter: _Waiter,
        submitted_at: float,
        job_id: str | None,
    ) -> HistoryEntry:
        """Until ``/history`` shows the prompt finished; websocket events say when to look.

        Past its time (on the GPU, or waiting for one) the prompt is taken off the backend and
        VendorTimeout raised.
        """
        last_poll = time.monotonic()
        while True:
            waiter.wake.clear()  # before reading the flags, so no wake-up is lost
            if waiter.error is not None:
                raise self._event_error(waiter.error, backend)
            now = time.monotonic()
            if (
                waiter.started_at is None
                and now - submitted_at > self.queue_timeout_s
                and (self.use_websocket and backend.ws_up)
            ):
                await self._give_up(backend, prompt_id, waiter, job_id, "to start")
            if now > self._deadline(waiter, submitted_at):
                await self._give_up(backend, prompt_id, waiter, job_id, "to finish")
            polling = not (self.use_websocket and backend.ws_up)
            if waiter.finished and waiter.outputs:
                # Told everything over the websocket: no /history round trip.
                return HistoryEntry(outputs=waiter.outputs, status=HistoryStatus(completed=True))
            if waiter.finished or polling or now - last_poll >= self.safety_poll_s:
                last_poll = now
                entry = await self._history(backend, prompt_id)
                if entry is not None:
                    status = entry.status or HistoryStatus()
                    if status.status_str == "error":
                        raise self._history_error(status, prompt_id, backend)
                    if status.completed or entry.outputs:
                        return entry
            # Finished-but-not-yet-in-history is a short window: poll it at the fast rate.
            fast = polling or waiter.finished
            interval = self.poll_interval_s if fast else self.safety_poll_s
            remaining = self._deadline(waiter, submitted_at) - time.monotonic()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(waiter.wake.wait(), max(0.01, min(interval, remaining)))

    async def _give_up(
        self, backend: _Backend, prompt_id: str, waiter: _Waiter, job_id: str | None, what: str
    ) -> None:
        limit = self.timeout_s if waiter.started_at is not None else self.queue_timeout_s
        logger.warning(
            "comfyui render timed out job_id=%s prompt_id=%s backend=%s waiting=%s limit_s=%s",
            job_id, prompt_id, backend.url, what, limit,
        )  # fmt: skip
        await self._cancel_prompt(backend, prompt_id, waiter)
        raise VendorTimeout(
            f"ComfyUI render did not {what.removeprefix('to ')} within {limit}s "
            f"prompt_id={prompt_id} backend={backend.url}",
            vendor=VENDOR,
        )

    def _event_error(self, data: ExecutionFailure, backend: _Backend) -> PodError:
        if data.event == "execution_interrupted":
            return RetryableError(
                f"ComfyUI execution interrupted at node {data.node_id} "
                f"prompt_id={data.prompt_id} backend={backend.url}",
                vendor=VENDOR,
                code="execution_interrupted",
            )
        return execution_error(data, backend=backend.url)

    def _history_error(self, status: HistoryStatus, prompt_id: str, backend: _Backend) -> PodError:
        for item in status.messages or []:
            if (
                isinstance(item, list)
                and len(item) == 2
                and item[0] in ("execution_error", "execution_interrupted")
                and isinstance(item[1], dict)
            ):
                return self._event_error(_failure(item[0], item[1]), backend)
        return RetryableError(
            f"ComfyUI execution failed prompt_id={prompt_id} backend={backend.url}",
            vendor=VENDOR,
            code="execution_error",
        )

    async def _download(
        self, backend: _Backend, entry: HistoryEntry, prompt_id: str
    ) -> RenderedImage:
        outputs = (entry.outputs or {}).values()
        images = [img for out in outputs for img in out.images or [] if img.type == "output"]
        if not images:
            raise PermanentError(
                f"ComfyUI prompt produced no output image (does the workflow end in SaveImage?) "
                f"prompt_id={prompt_id} backend={backend.url}",
                vendor=VENDOR,
            )
        ref = images[0]
        params = {"filename": ref.filename, "subfolder": ref.subfolder, "type": ref.type}
        resp = await self._request(backend, "GET", "/view", "ComfyUI GET /view", params=params)
        data = resp.content
        try:
            with Image.open(io.BytesIO(data)) as img:
                width, height = img.size
                fmt = img.format
        except (OSError, ValueError) as exc:
            raise RetryableError(
                f"ComfyUI /view returned no readable image prompt_id={prompt_id} "
                f"backend={backend.url}",
                vendor=VENDOR,
            ) from exc
        if fmt != "PNG":
            raise PermanentError(
                f"ComfyUI returned {fmt}, expected PNG prompt_id={prompt_id}", vendor=VENDOR
            )
        return RenderedImage(data, width, height, backend.url, prompt_id)

    async def _cancel_prompt(self, backend: _Backend, prompt_id: str, waiter: _Waiter) -> None:
        """Best effort: take the prompt off the queue, and interrupt it if it is running.

        ``/queue delete`` only removes pending prompts; a running one keeps the GPU busy
        until ``/interrupt``. The interrupt names the prompt (servers that know the field
        interrupt only that one) and is sent only when it runs, since an older server
        interrupts whatever runs: when its execution was seen to start, else (no websocket
        events) when ``/queue`` lists it running.
        """
        with contextlib.suppress(PodError, TimeoutError):
            async with asyncio.timeout(2.0):
                await self._request_once(
                    backend, "POST", "/queue", "ComfyUI POST /queue", json={"delete": [prompt_id]}
                )
                runs = waiter.started_at is not None
                if not runs and not waiter.finished:
                    state = await self._read(backend, "/queue", QueueState.parse)
                    runs = prompt_id in state.running_ids
                if runs and not waiter.finished:
                    await self._request_once(
                        backend,
                        "POST",
                        "/interrupt",
                        "ComfyUI POST /interrupt",
                        json={"prompt_id": prompt_id},
                    )

    async def aclose(self) -> None:
        """Close the websockets and HTTP connections of every backend."""
        await asyncio.gather(*(b.aclose() for b in self._backends))


class ComfyUISettings(PodSettings):
    """The ComfyUI servers and the workflow they run (``COMFYUI_*``)."""

    comfyui_api_url: str = Field(
        default="http://127.0.0.1:8188",
        description="One ComfyUI URL, or several separated by commas (a pool)",
    )
    comfyui_workflow_path: Path | None = Field(
        default=None, description="API-format workflow JSON; unset = bundled SDXL text-to-image"
    )
    comfyui_timeout_s: float = Field(
        default=600.0, gt=0, description="Time a render may take on the GPU (from its start)"
    )
    comfyui_queue_timeout_s: float = Field(
        default=600.0, gt=0, description="Time a submitted render may wait for a GPU"
    )
    comfyui_parallelism: int | None = Field(
        default=None, ge=1, le=64, description="Prompts one server runs at once; unset = learn"
    )
    comfyui_queue_factor: int = Field(
        default=2, ge=1, le=16, description="Renders a server may hold, per GPU (running + queued)"
    )
    comfyui_use_websocket: bool = True

    @field_validator("comfyui_api_url")
    @classmethod
    def _urls(cls, value: str) -> str:
        urls = [u.strip() for u in value.split(",") if u.strip()]
        if not urls or not all(u.startswith(("http://", "https://")) for u in urls):
            raise ValueError("expected http(s) URLs separated by commas")
        return ",".join(urls)

    @property
    def comfyui_urls(self) -> list[str]:
        return self.comfyui_api_url.split(",")


def comfyui_client(settings: ComfyUISettings) -> ComfyUIClient:
    """The client ``settings`` describe (the workflow read from disk)."""
    return ComfyUIClient(
        base_urls=settings.comfyui_urls,
        workflow=ComfyUIClient.load_workflow(settings.comfyui_workflow_path),
        timeout_s=settings.comfyui_timeout_s,
        queue_timeout_s=settings.comfyui_queue_timeout_s,
        use_websocket=settings.comfyui_use_websocket,
        parallelism=settings.comfyui_parallelism,
        queue_factor=settings.comfyui_queue_factor,
    )
