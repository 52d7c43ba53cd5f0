"""Health (public, no auth): ``/health`` is the whole system's view, in the seed's shape
(``healthy``, ``workers``) beside ours (``status``, ``checks``); ``/health/live`` and
``/health/ready`` are the probes for an orchestrator.

Which probe for what: a *liveness* probe restarts a process that does not answer, so it must
not fail because some other part is down (``/health/live``: the process answers). A
*readiness* probe takes a pod out of the load balancer while it cannot do its job
(``/health/ready``: it can accept jobs, i.e. reach the broker and the database). ``/health`` is
for people and dashboards: every stage, ComfyUI and each worker.

``/health/ready?stages=true`` also wants every stage of the deployment to hold its input
partitions (:mod:`shared.pipeline.groups`): a job submitted now is picked up at once. ``make up``
waits for it before it says "up". It is not the readiness probe's condition: a stage's rollout, or a
stage scaled to zero until there is work, must not take the API out of its Service, since a job
it accepts waits safely in Kafka for the stage (docs/decisions.md).
"""

from __future__ import annotations

import asyncio
from typing import Annotated

import httpx
from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse

from services.api import queries
from services.api.schemas.common import error_responses
from services.api.schemas.health import HealthView, ProbeView, SeedWorkerHealth
from services.api.state import ApiState, State
from shared.adapters.store import workers as worker_store
from shared.contract.topics import STAGES

router = APIRouter(tags=["health"])


@router.get(
    "/health",
    response_model=HealthView,
    responses={
        # Public, but the body limit and the text check still apply to it.
        **error_responses(413, 422),
        503: {"model": HealthView, "description": "A dependency is failing"},
    },
)
async def health(state: State) -> JSONResponse:
    """Kafka, PostgreSQL, a live instance per stage, ComfyUI; 503 names the failing check.
    ``workers`` lists each instance with the seed's per-worker checks."""
    settings = state.settings
    timeout = settings.health_timeout_s
    # Every check at once: the answer takes the slowest one's time, not their sum.
    accepting, stages, comfyui, rows = await asyncio.gather(
        _can_accept_jobs(state),
        _stages(state, timeout) if settings.stage_list() else _none(),
        _comfyui(state.probes(), settings.comfyui_api_url, timeout)
        if settings.comfyui_api_url
        else _none(),
        _worker_rows(state, timeout),
    )
    checks = dict(accepting)
    database = checks["database"]
    if stages is not None:
        checks["stages"] = stages if database == "ok" else "unknown"
    if comfyui is not None:
        checks["comfyui"] = comfyui
    healthy = all(v == "ok" for v in checks.values())
    workers = _workers(rows, checks) if database == "ok" else []
    view = HealthView(
        status="healthy" if healthy else "unhealthy",
        checks=checks,
        healthy=healthy,
        workers=workers,
    )
    return JSONResponse(view.model_dump(), status_code=200 if healthy else 503)


@router.get("/health/live", response_model=ProbeView, responses=error_responses(413, 422))
async def live() -> ProbeView:
    """The process answers (a liveness probe: nothing else is checked)."""
    return ProbeView(status="ok", checks={})


@router.get(
    "/health/ready",
    response_model=ProbeView,
    responses={
        **error_responses(413, 422),
        503: {
            "model": ProbeView,
            "description": "Kafka or PostgreSQL is unreachable (or, with stages=true, a stage "
            "does not hold its partitions yet)",
        },
    },
)
async def ready(
    state: State,
    stages: Annotated[
        bool,
        Query(
            description="Also require every stage of the deployment to hold all its input "
            "partitions, so that a job submitted now is picked up at once (what `make up` "
            "waits for); not for a readiness probe",
        ),
    ] = False,
) -> JSONResponse:
    """Jobs can be accepted: Kafka and PostgreSQL answer (a readiness probe); with
    ``stages=true``, one check per stage too (``ok`` or what it still lacks)."""
    checks = await _can_accept_jobs(state)
    if stages:
        checks.update(await _stage_groups(state))
    ok = all(v == "ok" for v in checks.values())
    view = ProbeView(status="ok" if ok else "unavailable", checks=checks)
    return JSONResponse(view.model_dump(), status_code=200 if ok else 503)


async def _stage_groups(state: ApiState) -> dict[str, str]:
    """Per stage of the deployment (those /health wants live, ``HEALTH_STAGES``): ``ok`` once
    its group holds every input partition."""
    names = [n for n in state.settings.stage_list() if n in STAGES]
    if not names:
        return {}
    timeout = state.settings.health_timeout_s
    try:
        views = await asyncio.wait_for(
            state.group_probe().views((STAGES[n] for n in names), timeout), timeout + 2
        )
    except Exception as exc:
        return {f"stage.{n}": f"unknown ({type(exc).__name__})" for n in names}
    return {f"stage.{v.stage}": "ok" if v.ok else v.detail for v in views}


async def _can_accept_jobs(state: ApiState) -> dict[str, str]:
    """What accepting a job needs: the broker and the database, checked at once."""
    timeout = state.settings.health_timeout_s
    kafka, database = await asyncio.gather(state.producer.check(timeout), _database(state, timeout))
    return {"kafka": kafka, "database": database}


async def _none() -> None:
    return None


async def _worker_rows(state: ApiState, timeout: float) -> list[worker_store.WorkerRecord]:
    """The instances heard from lately (none when the database does not answer)."""
    try:
        return await asyncio.wait_for(
            worker_store.list_workers(
                state.pool, state.settings.worker_stale_s, state.settings.worker_forget_s
            ),
            timeout + 1,
        )
    except Exception:
        return []


def _workers(
    rows: list[worker_store.WorkerRecord], checks: dict[str, str]
) -> list[SeedWorkerHealth]:
    """Each instance heard from lately, in the seed's shape: its own heartbeat (``worker``)
    and what it depends on (``queue``: the broker, ``database``, ``orchestrator``: ComfyUI)."""
    shared = {
        "queue": checks["kafka"] == "ok",
        "database": checks["database"] == "ok",
        "orchestrator": checks.get("comfyui", "ok") == "ok",
    }
    index: dict[str, int] = {}
    out = []
    for row in rows:
        if row["status"] == "stopped":
            continue
        n = index[row["service"]] = index.get(row["service"], -1) + 1
        alive = row["status"] == "running"
        health = {"worker": alive, **shared}
        out.append(
            SeedWorkerHealth(
                id=row["id"],
                index=n,
                service=row["service"],
                healthy=all(health.values()),
                health={"healthy": all(health.values()), **health},
            )
        )
    return out


async def _stages(state: ApiState, timeout: float) -> str:
    try:
        live = await asyncio.wait_for(
            worker_store.live_services(state.pool, state.settings.worker_stale_s), timeout + 1
        )
    except Exception as exc:
        return f"unavailable ({type(exc).__name__})"
    missing = [s for s in state.settings.stage_list() if s not in live]
    return f"no live instance: {', '.join(missing)}" if missing else "ok"


async def _comfyui(client: httpx.AsyncClient, urls: str, timeout: float) -> str:
    """Any backend of the pool answering /system_stats is enough to render."""
    for url in (u.strip() for u in urls.split(",") if u.strip()):
        try:
            resp = await client.get(f"{url.rstrip('/')}/system_stats", timeout=timeout)
            if resp.status_code == 200:
                return "ok"
        except httpx.HTTPError:
            continue
    return "unreachable"


async def _database(state: ApiState, timeout: float) -> str:
    try:
        await asyncio.wait_for(queries.ping(state.pool, timeout), timeout + 1)
    except Exception as exc:
        # The class name only: driver messages can carry hosts and user names.
        return f"unavailable ({type(exc).__name__})"
    return "ok"
