"""The ComfyUI client of the generator stage: one workflow in, one PNG out.

A render fills a copy of an API-format workflow (prompt texts, seed, size), queues it with
``POST /prompt`` on the least busy backend of a pool, waits for it to finish and downloads the
image through ``/history`` and ``/view``.

Waiting is event driven: one websocket per backend (one ``client_id`` per client instance)
carries the execution events of every in-flight render and wakes the matching waiter by
``prompt_id``. The websocket is an accelerator, not a dependency: while it is down renders poll
``/history``, and even while it is up each render re-checks ``/history`` now and then, so a
message lost across a reconnect cannot stall a render until its timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import io
import itertools
import json
import logging
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from PIL import Image
from websockets.asyncio.client import connect as ws_connect

from shared.errors import (
    PermanentError,
    PodError,
    RetryableError,
    VendorTimeout,
    classify_http_status,
)

logger = logging.getLogger(__name__)

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


@dataclass(frozen=True)
class RenderedImage:
    """One finished render."""

    data: bytes
    width: int
    height: int
    backend: str
    prompt_id: str


# --------------------------------------------------------------------------- workflow filling


def _link_target(workflow: dict[str, Any], link: object, what: str) -> str:
    if not (isinstance(link, list) and len(link) == 2 and str(link[0]) in workflow):
        raise PermanentError(f"workflow: {what} is not a link to an existing node", vendor=VENDOR)
    return str(link[0])


def _follow(
    workflow: dict[str, Any], link: object, wanted: frozenset[str], via: str, what: str
) -> str:
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


def fill_workflow(
    workflow: dict[str, Any],
    *,
    prompt: str,
    negative_prompt: str,
    seed: int,
    width: int,
    height: int,
) -> dict[str, Any]:
    """A deep copy of ``workflow`` with texts, seed and size set, found by graph links.

    Every sampler gets the seed; the text encoders its ``positive``/``negative`` inputs lead to
    get the texts; the empty latent its ``latent_image`` leads to (directly or through an earlier
    sampler, as in base+refiner graphs) gets the size. Node ids are never assumed.
    """
    wf = copy.deepcopy(workflow)
    if not isinstance(wf, dict) or not all(isinstance(n, dict) for n in wf.values()):
        raise PermanentError("workflow: not an API-format object of nodes", vendor=VENDOR)
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
    return wf


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


def execution_error(data: dict[str, Any], *, backend: str) -> PodError:
    """Map an ``execution_error`` payload onto retryable (GPU trouble) or permanent (bad input)."""
    exc_type = str(data.get("exception_type") or "")
    message = (
        f"ComfyUI execution failed at node {data.get('node_id')} ({data.get('node_type')}): "
        f"{exc_type}: {data.get('exception_message', '')} "
        f"prompt_id={data.get('prompt_id')} backend={backend}"
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
    retry_after = None
    with contextlib.suppress(TypeError, ValueError):
        retry_after = float(resp.headers.get("Retry-After", ""))
    return cls(
        f"{what} failed: {detail} backend={backend}",
        vendor=VENDOR,
        status=resp.status_code,
        code=code,
        retry_after=retry_after,
    )


# --------------------------------------------------------------------------- backends


@dataclass
class _Waiter:
    """What a render waits on; the websocket reader fills it in and sets ``wake``."""

    wake: asyncio.Event = field(default_factory=asyncio.Event)
    finished: bool = False
    error: dict[str, Any] | None = None


class _Backend:
    """One ComfyUI server: its HTTP client, its shared websocket and the renders on it."""

    def __init__(self, url: str, client_id: str, http: httpx.AsyncClient) -> None:
        self.url = url.rstrip("/")
        scheme, rest = self.url.split("://", 1)
        self.ws_url = f"{'wss' if scheme == 'https' else 'ws'}://{rest}/ws?clientId={client_id}"
        self.http = http
        self.in_flight = 0
        self.waiters: dict[str, _Waiter] = {}
        self.ws_up = False
        self.unhealthy_until = 0.0
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
                async with ws_connect(self.ws_url, open_timeout=5, max_size=WS_MAX_MESSAGE) as ws:
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
            waiter = self.waiters.get(str(data.get("prompt_id")))
        except (ValueError, AttributeError):
            return
        if waiter is None:
            return
        if kind in ("execution_error", "execution_interrupted"):
            waiter.error = {**data, "_event": kind}
        elif kind == "execution_success" or (kind == "executing" and data.get("node") is None):
            waiter.finished = True
        else:
            return  # progress and per-node events: nothing to wake up for
        waiter.wake.set()

    async def aclose(self) -> None:
        if self._ws_task is not None:
            self._ws_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ws_task
        await self.http.aclose()


# --------------------------------------------------------------------------- client


class ComfyUIClient:
    """Renders images on a pool of ComfyUI servers; safe for hundreds of concurrent renders."""

    def __init__(
        self,
        *,
        base_urls: list[str],
        workflow: dict[str, Any],
        timeout_s: float = 600.0,
        use_websocket: bool = True,
        poll_interval_s: float = 0.25,
    ) -> None:
        if not base_urls:
            raise ValueError("ComfyUIClient needs at least one base URL")
        self.workflow = workflow
        self.timeout_s = timeout_s
        self.use_websocket = use_websocket
        self.poll_interval_s = poll_interval_s
        # With the websocket up, still re-check /history this often in case an event was lost.
        self.safety_poll_s = max(2.0, poll_interval_s * 20)
        self.client_id = uuid.uuid4().hex
        per_request = httpx.Timeout(min(60.0, timeout_s), connect=5.0, pool=timeout_s)
        limits = httpx.Limits(max_connections=64, max_keepalive_connections=32)
        self._backends = [
            _Backend(url, self.client_id, httpx.AsyncClient(timeout=per_request, limits=limits))
            for url in base_urls
        ]
        self._rr = itertools.count()

    @classmethod
    def load_workflow(cls, path: str | Path | None) -> dict[str, Any]:
        """Read an API-format workflow JSON; None means the bundled SDXL text-to-image one."""
        file = Path(path) if path is not None else DEFAULT_WORKFLOW
        try:
            data = json.loads(file.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise PermanentError(f"workflow {file}: cannot load: {exc}", vendor=VENDOR) from exc
        if not isinstance(data, dict):
            raise PermanentError(f"workflow {file}: not an API-format object", vendor=VENDOR)
        return data

    def _pick(self) -> _Backend:
        """Fewest in-flight renders wins, backends that just refused connections last; ties
        go round-robin so a burst spreads evenly."""
        now = time.monotonic()

        def key(b: _Backend) -> tuple[bool, int]:
            return (b.unhealthy_until > now, b.in_flight)

        best = min(key(b) for b in self._backends)
        candidates = [b for b in self._backends if key(b) == best]
        return candidates[next(self._rr) % len(candidates)]

    async def render(
        self,
        *,
        prompt: str,
        negative_prompt: str,
        seed: int,
        width: int = 1024,
        height: int = 1024,
        job_id: str | None = None,
    ) -> RenderedImage:
        """Render one image; raises VendorTimeout, RetryableError or PermanentError."""
        wf = fill_workflow(
            self.workflow,
            prompt=prompt,
            negative_prompt=negative_prompt,
            seed=seed,
            width=width,
            height=height,
        )
        backend = self._pick()
        # Chosen by us and registered before submitting, so no event can arrive unclaimed.
        prompt_id = str(uuid.uuid4())
        waiter = _Waiter()
        backend.waiters[prompt_id] = waiter
        backend.in_flight += 1
        started = time.monotonic()
        try:
            async with asyncio.timeout(self.timeout_s):
                if self.use_websocket:
                    await backend.ensure_websocket(min(2.0, self.timeout_s / 4))
                prompt_id = await self._submit(backend, wf, prompt_id, waiter, job_id)
                entry = await self._wait(backend, prompt_id, waiter)
                image = await self._download(backend, entry, prompt_id)
        except TimeoutError as exc:
            logger.warning(
                "comfyui render timed out job_id=%s prompt_id=%s backend=%s timeout_s=%s",
                job_id, prompt_id, backend.url, self.timeout_s,
            )  # fmt: skip
            await self._forget(backend, prompt_id)
            raise VendorTimeout(
                f"ComfyUI render did not finish in {self.timeout_s}s "
                f"prompt_id={prompt_id} backend={backend.url}",
                vendor=VENDOR,
            ) from exc
        finally:
            backend.in_flight -= 1
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
            backend.unhealthy_until = time.monotonic() + 5.0
            raise RetryableError(
                f"{what} failed backend={backend.url}: {type(exc).__name__}: {exc}", vendor=VENDOR
            ) from exc
        if resp.status_code >= 400:
            raise _http_error(resp, what, backend.url)
        return resp

    async def _submit(
        self,
        backend: _Backend,
        wf: dict[str, Any],
        prompt_id: str,
        waiter: _Waiter,
        job_id: str | None,
    ) -> str:
        body = {"prompt": wf, "client_id": self.client_id, "prompt_id": prompt_id}
        resp = await self._request(backend, "POST", "/prompt", "ComfyUI POST /prompt", json=body)
        answer = resp.json()
        got = str(answer.get("prompt_id") or prompt_id)
        if got != prompt_id:
            # An older ComfyUI ignores client-chosen ids: listen under the one it assigned.
            backend.waiters.pop(prompt_id, None)
            backend.waiters[got] = waiter
        if answer.get("node_errors"):
            logger.warning(
                "comfyui prompt has node errors job_id=%s prompt_id=%s backend=%s errors=%s",
                job_id, got, backend.url, _describe_rejection(answer)[0],
            )  # fmt: skip
        logger.debug("comfyui queued job_id=%s prompt_id=%s backend=%s", job_id, got, backend.url)
        return got

    async def _history(self, backend: _Backend, prompt_id: str) -> dict[str, Any] | None:
        resp = await self._request(backend, "GET", f"/history/{prompt_id}", "ComfyUI GET /history")
        entry = resp.json().get(prompt_id)
        return entry if isinstance(entry, dict) else None

    async def _wait(self, backend: _Backend, prompt_id: str, waiter: _Waiter) -> dict[str, Any]:
        """Until ``/history`` shows the prompt finished; websocket events say when to look."""
        last_poll = time.monotonic()
        while True:
            waiter.wake.clear()  # before reading the flags, so no wake-up is lost
            if waiter.error is not None:
                raise self._event_error(waiter.error, backend)
            polling = not (self.use_websocket and backend.ws_up)
            now = time.monotonic()
            if waiter.finished or polling or now - last_poll >= self.safety_poll_s:
                last_poll = now
                entry = await self._history(backend, prompt_id)
                if entry is not None:
                    status = entry.get("status") or {}
                    if status.get("status_str") == "error":
                        raise self._history_error(status, prompt_id, backend)
                    if status.get("completed", True) or entry.get("outputs"):
                        return entry
            # Finished-but-not-yet-in-history is a short window: poll it at the fast rate.
            fast = polling or waiter.finished
            interval = self.poll_interval_s if fast else self.safety_poll_s
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(waiter.wake.wait(), interval)

    def _event_error(self, data: dict[str, Any], backend: _Backend) -> PodError:
        if data.get("_event") == "execution_interrupted":
            return RetryableError(
                f"ComfyUI execution interrupted at node {data.get('node_id')} "
                f"prompt_id={data.get('prompt_id')} backend={backend.url}",
                vendor=VENDOR,
                code="execution_interrupted",
            )
        return execution_error(data, backend=backend.url)

    def _history_error(self, status: dict[str, Any], prompt_id: str, backend: _Backend) -> PodError:
        for item in status.get("messages") or []:
            if (
                isinstance(item, list)
                and len(item) == 2
                and item[0] in ("execution_error", "execution_interrupted")
                and isinstance(item[1], dict)
            ):
                return self._event_error({**item[1], "_event": item[0]}, backend)
        return RetryableError(
            f"ComfyUI execution failed prompt_id={prompt_id} backend={backend.url}",
            vendor=VENDOR,
            code="execution_error",
        )

    async def _download(
        self, backend: _Backend, entry: dict[str, Any], prompt_id: str
    ) -> RenderedImage:
        images = [
            img
            for out in (entry.get("outputs") or {}).values()
            for img in (out.get("images") or [])
            if isinstance(img, dict) and img.get("type", "output") == "output"
        ]
        if not images:
            raise PermanentError(
                f"ComfyUI prompt produced no output image (does the workflow end in SaveImage?) "
                f"prompt_id={prompt_id} backend={backend.url}",
                vendor=VENDOR,
            )
        ref = images[0]
        params = {
            "filename": ref["filename"],
            "subfolder": ref.get("subfolder", ""),
            "type": ref.get("type", "output"),
        }
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

    async def _forget(self, backend: _Backend, prompt_id: str) -> None:
        """Best effort after a timeout: drop the prompt from the queue so no GPU renders it."""
        with contextlib.suppress(PodError, TimeoutError):
            async with asyncio.timeout(2.0):
                await self._request(
                    backend, "POST", "/queue", "ComfyUI POST /queue", json={"delete": [prompt_id]}
                )

    async def aclose(self) -> None:
        """Close the websockets and HTTP connections of every backend."""
        await asyncio.gather(*(b.aclose() for b in self._backends))
