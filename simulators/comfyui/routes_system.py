"""What a client asks of the server itself: ``/system_stats`` and ``/object_info``."""

from __future__ import annotations

import sys
from typing import Any

from fastapi import APIRouter

from simulators.comfyui.catalog import COMFYUI_VERSION, object_info
from simulators.comfyui.state import Sim

router = APIRouter()

GIB = 1024**3


def _device(i: int) -> dict[str, Any]:
    return {
        "name": f"cuda:{i} Simulated RTX 4090 : cudaMallocAsync",
        "type": "cuda",
        "index": i,
        "vram_total": 24 * GIB,
        "vram_free": 20 * GIB,
        "torch_vram_total": 8 * GIB,
        "torch_vram_free": 6 * GIB,
    }


@router.get("/system_stats")
async def system_stats(sim: Sim) -> dict[str, Any]:
    return {
        "system": {
            "os": "posix" if sys.platform != "win32" else "nt",
            "ram_total": 64 * GIB,
            "ram_free": 48 * GIB,
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
        "devices": [_device(i) for i in range(sim.config.workers)],
    }


@router.get("/object_info")
async def get_object_info(sim: Sim) -> dict[str, Any]:
    return object_info(sim.folders)


@router.get("/object_info/{node_class}")
async def object_info_one(node_class: str, sim: Sim) -> dict[str, Any]:
    info = object_info(sim.folders)
    return {node_class: info[node_class]} if node_class in info else {}
