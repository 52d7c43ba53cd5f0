"""Prompts and their results: ``/prompt``, ``/history``, ``/view``, ``/queue`` and
``/interrupt``, as ComfyUI's server answers them."""

from __future__ import annotations

import json
import uuid
from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response

from simulators.comfyui.state import Sim
from simulators.comfyui.validation import error, validate_prompt
from simulators.common import error_json

router = APIRouter()


def _refused(problem: dict[str, Any], node_errors: dict[str, Any] | None = None) -> JSONResponse:
    return error_json(400, {"error": problem, "node_errors": node_errors or {}})


@router.post("/prompt")
async def post_prompt(request: Request, sim: Sim) -> JSONResponse:
    try:
        body = await request.json()
    except ValueError:
        body = None
    if not isinstance(body, dict) or "prompt" not in body:
        return _refused(error("no_prompt", "No prompt provided"))
    prompt = body["prompt"]
    problem, node_errors = validate_prompt(
        prompt, v3_combos_at_prompt=sim.config.combo_check == "prompt", folders=sim.folders
    )
    if problem is not None:
        return _refused(problem, node_errors)
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
            return _refused(error("invalid_prompt", "number must be a number"))
    job = sim.enqueue(
        prompt,
        prompt_id,
        str(client_id) if client_id else None,
        extra,
        number=number,
        front=bool(body.get("front")),
    )
    return JSONResponse({"prompt_id": prompt_id, "number": job.number, "node_errors": {}})


@router.get("/prompt")
async def get_prompt(sim: Sim) -> dict[str, Any]:
    return {"exec_info": {"queue_remaining": sim.queue_remaining()}}


@router.get("/history")
async def get_history(sim: Sim, max_items: int | None = None) -> dict[str, Any]:
    items = list(sim.history.items())
    if max_items is not None:
        items = items[-max_items:] if max_items > 0 else []
    return dict(items)


@router.get("/history/{prompt_id}")
async def get_history_one(prompt_id: str, sim: Sim) -> dict[str, Any]:
    entry = sim.history.get(prompt_id)
    return {prompt_id: entry} if entry is not None else {}


@router.post("/history")
async def post_history(request: Request, sim: Sim) -> Response:
    body = await request.json()
    if body.get("clear"):
        sim.history.clear()
    for pid in body.get("delete", []):
        sim.history.pop(str(pid), None)
    return Response(status_code=200)


@router.get("/view")
async def view(
    sim: Sim,
    filename: str = "",
    subfolder: str = "",
    type_: str = Query("output", alias="type"),
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


@router.get("/queue")
async def get_queue(sim: Sim) -> dict[str, Any]:
    return {
        "queue_running": [j.queue_item() for j in sim.running.values()],
        "queue_pending": [j.queue_item() for j in sim.pending.values()],
    }


@router.post("/queue")
async def post_queue(request: Request, sim: Sim) -> Response:
    body = await request.json()
    if body.get("clear"):
        sim.delete_pending(list(sim.pending))
    if isinstance(body.get("delete"), list):
        sim.delete_pending([str(p) for p in body["delete"]])
    return Response(status_code=200)


@router.post("/interrupt")
async def interrupt(request: Request, sim: Sim) -> Response:
    raw = await request.body()
    body = json.loads(raw) if raw.strip() else {}
    target = body.get("prompt_id") if isinstance(body, dict) else None
    for job in sim.running.values():
        if target is None or job.prompt_id == target:
            job.interrupted = True
    return Response(status_code=200)
