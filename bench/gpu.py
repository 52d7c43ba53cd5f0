"""GPU utilisation: does the generator's ComfyUI client keep every GPU busy with a backlog?

    python bench/gpu.py [--render-ms 250] [--per-gpu 40] [--image-size 64]

Runs the real ComfyUIClient (its priority scheduler and bounded queue per backend) against
ComfyUI simulators with a fixed render time, with a backlog of renders waiting, in two layouts:
one server with one GPU, and a pool of four one-GPU servers (a real ComfyUI process drives one
GPU). It prints images/s, the pool's limit (GPUs / render time) and their ratio; the bar
(issue 8) is 97 % or better.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import httpx

from bench.common import table
from devstack.launch.ports import free_port
from shared.adapters.vendors.comfyui import ComfyUIClient
from simulators.process import SimulatorProcess


async def drive(urls: list[str], images: int, size: int) -> tuple[float, int, float]:
    """Render ``images`` at once through one client: seconds from the first submit to the last
    image, images done, and the GPUs' busy seconds meanwhile (from the simulators' books)."""
    client = ComfyUIClient(
        base_urls=urls, workflow=ComfyUIClient.load_workflow(None), timeout_s=120
    )
    try:
        await client.learn_capacity()
        busy_before = await busy_s(urls)
        started = time.monotonic()
        done = await asyncio.gather(
            *(
                client.render(
                    prompt=f"bench poster {i}", negative_prompt="", seed=i, width=size,
                    height=size, band=2, order=(i,),
                )
                for i in range(images)
            )
        )  # fmt: skip
        elapsed = time.monotonic() - started
        return elapsed, len(done), await busy_s(urls) - busy_before
    finally:
        await client.aclose()


async def busy_s(urls: list[str]) -> float:
    async with httpx.AsyncClient() as http:
        books = [(await http.get(f"{u}/_sim/books")).json() for u in urls]
    return float(sum(b["busy_ms"] for b in books)) / 1000


def run_layout(gpus: int, render_ms: float, per_gpu: int, size: int) -> list[str]:
    env = {"SIM_COMFYUI_RENDER_MS": str(render_ms), "SIM_LATENCY_MS": "0", "LOG_LEVEL": "WARNING"}
    sims = [SimulatorProcess("comfyui", free_port(), env=env) for _ in range(gpus)]
    with ThreadPoolExecutor(gpus) as pool:
        list(pool.map(lambda s: s.start(), sims))
    try:
        elapsed, count, busy = asyncio.run(drive([s.url for s in sims], gpus * per_gpu, size))
    finally:
        for sim in sims:
            sim.stop()
    rate = count / elapsed
    limit = gpus / (render_ms / 1000)
    return [
        f"{gpus} x 1-GPU server{'s' if gpus > 1 else ''}",
        str(count),
        f"{elapsed:.2f}",
        f"{rate:.2f}",
        f"{limit:.2f}",
        f"{100 * rate / limit:.1f} %",
        f"{100 * busy / (gpus * elapsed):.1f} %",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--render-ms", type=float, default=250.0)
    parser.add_argument("--per-gpu", type=int, default=40, help="renders in the backlog per GPU")
    parser.add_argument("--image-size", type=int, default=64)
    args = parser.parse_args()
    rows = [run_layout(g, args.render_ms, args.per_gpu, args.image_size) for g in (1, 4)]
    print(
        table(
            f"GPU utilisation ({args.render_ms:.0f} ms a render, backlog of "
            f"{args.per_gpu} renders per GPU)",
            ["pool", "images", "seconds", "images/s", "limit/s", "ratio", "GPU busy"],
            rows,
        )
    )


if __name__ == "__main__":
    main()
