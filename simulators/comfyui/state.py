"""What one simulated ComfyUI holds: the queue, the history, the stored images, the websocket
clients and the simulated GPUs that execute prompts."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import heapq
import json
import logging
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import Depends
from starlette.requests import HTTPConnection

from simulators.comfyui.catalog import OUTPUT_NODES, ModelFolders, missing_model
from simulators.comfyui.graph import Plan, Recipe, plan_prompt
from simulators.common.requestlog import RequestLog

logger = logging.getLogger(__name__)

# Per-websocket outbox; a client that falls this far behind is disconnected, not buffered.
WS_OUTBOX_MAX = 10_000
IMAGE_CACHE_MAX = 64


@dataclass
class ComfyConfig:
    """Execution knobs of the simulated ComfyUI (``SIM_COMFYUI_*``)."""

    workers: int = 1
    render_ms: float = 0.0
    exec_failure_rate: float = 0.0
    # Used when render_ms is 0: one sampler step at 1024x1024, scaled with the latent's pixels
    # (and batch), as a GPU's time is; and one model upscale (ImageUpscaleWithModel).
    step_ms: float = 0.0
    upscale_ms: float = 0.0
    history_max: int = 10_000
    combo_check: str = "execution"  # one of COMBO_CHECKS


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
    folders: ModelFolders = field(default_factory=ModelFolders)
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
    # Each execution's interval, for GET /_sim/requests (set by create_app).
    log: RequestLog | None = None

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
            began, began_at = time.monotonic(), time.time()
            try:
                await self.execute(job)
            except Exception:
                logger.exception(
                    "simulated execution crashed prompt_id=%s gpu=%d", job.prompt_id, gpu
                )
            finally:
                self.busy_s += time.monotonic() - began
                if self.log is not None:
                    self.log.work("execute", began_at, time.time(), job.prompt_id)
                self.running.pop(job.prompt_id, None)
                # ComfyUI sends this after the history entry exists, on success and failure alike.
                self.send("executing", {"node": None, "prompt_id": job.prompt_id}, job.client_id)
                self.broadcast_status()

    async def execute(self, job: Job) -> None:
        """Run one prompt: the ComfyUI event sequence, progress over the render time, images."""
        run = _Run(self, job)
        run.emit("execution_start", {"prompt_id": job.prompt_id, "timestamp": _ms()}, True)
        run.emit(
            "execution_cached", {"nodes": [], "prompt_id": job.prompt_id, "timestamp": _ms()}, True
        )
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
        try:
            for node_id in plan.order:
                await self._run_node(run, plan, node_id, fail_now, drawn, outputs)
        except (_Interrupted, _NodeFailed) as exc:
            run.failed(exc)
            self.store_history(job, self._entry(job, plan, {}, "error", False, run.messages))
            return
        run.emit("execution_success", {"prompt_id": job.prompt_id, "timestamp": _ms()}, True)
        self.books["executed"] += 1
        self.store_history(job, self._entry(job, plan, outputs, "success", True, run.messages))

    async def _run_node(
        self,
        run: _Run,
        plan: Plan,
        node_id: str,
        fail_now: bool,
        drawn: Mapping[Recipe, asyncio.Future[bytes]],
        outputs: dict[str, Any],
    ) -> None:
        job, pid = run.job, run.job.prompt_id
        run.current = node_id
        run.emit("executing", {"node": node_id, "display_node": node_id, "prompt_id": pid})
        missing = missing_model(job.prompt[node_id], self.folders)
        if missing is not None:
            raise _ModelNotFound(
                f"Model in folder '{missing[0]}' with filename '{missing[1]}' not found."
            )
        if node_id == plan.sampler:
            await self._sample(job, node_id, plan, fail_now)
        elif (
            job.prompt[node_id].get("class_type") == "ImageUpscaleWithModel"
            and self.config.upscale_ms > 0
        ):
            await asyncio.sleep(self.config.upscale_ms / 1000.0)
        if node_id in plan.recipes:
            images = []
            for recipe in plan.recipes[node_id]:
                ref = self.add_file(pid, plan.prefixes[node_id], recipe)
                data = await drawn[recipe]
                self.cache_image((ref["subfolder"], ref["filename"]), data)
                images.append(ref)
            outputs[node_id] = {"images": images}
            output = {"node": node_id, "display_node": node_id, "output": outputs[node_id]}
            run.emit("executed", {**output, "prompt_id": pid})
        run.executed.append(node_id)

    def step_seconds(self, plan: Plan) -> float:
        """One sampler step: render_ms over the steps, else step_ms scaled with the pixels."""
        if self.config.render_ms > 0 or self.config.step_ms <= 0:
            return self.config.render_ms / 1000.0 / plan.steps
        return self.config.step_ms / 1000.0 * plan.pixels / (1024 * 1024)

    async def _sample(self, job: Job, node_id: str, plan: Plan, fail: bool) -> None:
        # Progress is paced against absolute deadlines so many steps don't accumulate drift.
        steps = plan.steps
        per_step = self.step_seconds(plan)
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


class _Run:
    """One execution's events: sent to its client, the ones ComfyUI records kept for history."""

    def __init__(self, sim: SimState, job: Job) -> None:
        self.sim = sim
        self.job = job
        self.messages: list[list[Any]] = []
        self.executed: list[str] = []
        self.current = ""

    def emit(self, event: str, data: dict[str, Any], record: bool = False) -> None:
        if record:
            self.messages.append([event, data])
        self.sim.send(event, data, self.job.client_id)

    def failed(self, exc: Exception) -> None:
        """Report an interruption or a node's failure as ComfyUI does."""
        about = {
            "prompt_id": self.job.prompt_id,
            "node_id": self.current,
            "node_type": self.job.prompt[self.current]["class_type"],
            "executed": self.executed,
        }
        if isinstance(exc, _Interrupted):
            self.sim.books["interrupted"] += 1
            self.emit("execution_interrupted", {**about, "timestamp": _ms()}, record=True)
            return
        self.sim.books["failed"] += 1
        detail: dict[str, object] = {
            "exception_message": str(exc),
            "exception_type": getattr(exc, "exception_type", "Exception"),
            "traceback": list(getattr(exc, "frames", ())),
            "current_inputs": {},
            "current_outputs": {},
            "timestamp": _ms(),
        }
        self.emit("execution_error", {**about, **detail}, record=True)


def _ms() -> int:
    return int(time.time() * 1000)


async def get_sim(request: HTTPConnection) -> SimState:
    sim: SimState = request.app.state.sim
    return sim


Sim = Annotated[SimState, Depends(get_sim)]
