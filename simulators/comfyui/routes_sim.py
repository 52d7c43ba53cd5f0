"""ComfyUI's own test hook: ``GET/POST /_sim/comfyui`` (execution knobs at run time)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from simulators.comfyui.catalog import COMBO_CHECKS
from simulators.comfyui.state import Sim, SimState
from simulators.common.control import as_float, json_object

router = APIRouter(prefix="/_sim")


def _config(sim: SimState) -> dict[str, Any]:
    c = sim.config
    return {
        "workers": c.workers,
        "render_ms": c.render_ms,
        "step_ms": c.step_ms,
        "upscale_ms": c.upscale_ms,
        "exec_failure_rate": c.exec_failure_rate,
        "history_max": c.history_max,
        "combo_check": c.combo_check,
    }


@router.get("/comfyui")
async def get_sim_config(sim: Sim) -> dict[str, Any]:
    return _config(sim)


@router.post("/comfyui", response_model=None)
async def set_sim_config(request: Request, sim: Sim) -> dict[str, Any] | JSONResponse:
    body = await json_object(request)
    if "render_ms" in body:
        sim.config.render_ms = as_float(body["render_ms"])
    for pace_key in ("step_ms", "upscale_ms"):
        if pace_key in body:
            setattr(sim.config, pace_key, max(0.0, as_float(body[pace_key])))
    if "exec_failure_rate" in body:
        sim.config.exec_failure_rate = as_float(body["exec_failure_rate"])
    if "combo_check" in body:
        if body["combo_check"] not in COMBO_CHECKS:
            return JSONResponse({"error": f"combo_check: one of {COMBO_CHECKS}"}, 400)
        sim.config.combo_check = str(body["combo_check"])
    return _config(sim)


def books(sim: SimState) -> dict[str, int]:
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
