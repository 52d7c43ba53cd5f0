"""``/ws?clientId=...``: the events of the prompts a client submitted, and the queue's status."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid

from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from simulators.comfyui.state import WS_OUTBOX_MAX, SimState

router = APIRouter()


async def _serve(websocket: WebSocket, outbox: asyncio.Queue[str | None]) -> None:
    """Send the outbox until it ends or the client goes away."""

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


@router.websocket("/ws")
async def ws(websocket: WebSocket, clientId: str | None = None) -> None:
    sim: SimState = websocket.app.state.sim
    await websocket.accept()
    sid = clientId or uuid.uuid4().hex
    outbox: asyncio.Queue[str | None] = asyncio.Queue(maxsize=WS_OUTBOX_MAX)
    sim.sockets[sid].add(outbox)
    outbox.put_nowait(json.dumps({"type": "status", "data": {**sim.status_data(), "sid": sid}}))
    try:
        await _serve(websocket, outbox)
    finally:
        sim.sockets[sid].discard(outbox)
        if not sim.sockets[sid]:
            sim.sockets.pop(sid, None)
        # Best effort: the peer may already be gone, which each server backend reports its way.
        with contextlib.suppress(Exception):
            await websocket.close()
