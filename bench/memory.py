"""Where the generator's working memory goes with print-size art: peak RSS per step of a job.

    python bench/memory.py [--size 4096] [--designs 6] [--burst 6]

One process laid out as the generator is (its modules imported, the real screener built with
every local check: OCR by Tesseract, the perceptual hash, NudeNet's classifier; Claude's review
left out, it holds no pixels; the hashes kept in memory), the collector settled and glibc's mmap
threshold fixed as every service does at start. The designs are rendered beforehand by the
ComfyUI simulator's own code in a child process (the generator receives them as bytes from
ComfyUI: here, read from a file), so the render's own pixels are not this process's.

For each step of one job, the kernel's peak resident set (VmHWM) is reset before it
(``/proc/self/clear_refs``) and read after it: the peak over the step, not a sample. Steps:
the downloaded bytes, their store, the screener's read back, each check alone (hash,
classifier, OCR's preparation plus its Tesseract runs, which are child processes and not
counted), the screener as the generator runs it (checks side by side), then ``--burst``
designs screened at once (several jobs in flight), and the RSS left after.

Prints one table: per step its peak, its rise over the RSS before it, and the RSS after.
Not part of ``make test``; a figure, not a verdict (noisy on a shared machine).
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# The generator's modules, imported as it imports them (its idle RSS is theirs).
import services.generator.handler  # noqa: F401
from services.generator.screening import Screener

T = TypeVar("T")

_KB = 1024


def status_mb(key: str) -> float:
    """This process's ``key`` line of /proc/self/status (VmRSS, VmHWM) in MB."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(key + ":"):
                return int(line.split()[1]) / _KB
    raise RuntimeError(f"no {key} in /proc/self/status")


def reset_peak() -> None:
    """Set VmHWM to the current RSS (proc(5): clear_refs, "5")."""
    with open("/proc/self/clear_refs", "w") as refs:
        refs.write("5")


def grained(png: bytes) -> bytes:
    """``png`` with a little noise over every pixel, saved as ComfyUI's SaveImage saves
    (compress_level 4): the simulator's upscale repeats pixels, so its PNGs compress to a few
    MB, where a model's 4096 px upscale has no two pixels alike and is 20-40 MB."""
    import io

    from PIL import Image

    with Image.open(io.BytesIO(png)) as img:
        rgb = img.convert("RGB")
    noise = Image.effect_noise(rgb.size, 40).convert("RGB")
    out = io.BytesIO()
    Image.blend(rgb, noise, 0.15).save(out, format="PNG", compress_level=4)
    return out.getvalue()


def render(out: Path, designs: int, size: int, grain: bool) -> None:
    """``designs`` PNGs at ``size`` px as the ComfyUI simulator makes them (a 1024 px sample
    scaled up), half of them with a slogan for OCR to read."""
    from simulators.comfyui.render import render_png

    for i in range(designs):
        prompt = f"a retro sunset over rolling hills, design {i}"
        if i % 2:
            prompt += ' with the text "STAY WILD" in bold letters'
        data = render_png(prompt, i, 1024, 1024, out_width=size, out_height=size)
        if grain:
            data = grained(data)
        (out / f"{i}.png").write_bytes(data)
        (out / f"{i}.txt").write_text(prompt)


@dataclass
class Steps:
    """Runs steps, each with its peak RSS (VmHWM reset before it) and time."""

    rows: list[list[str]] = field(default_factory=list)

    async def run(self, name: str, work: Callable[[], Awaitable[T]]) -> T:
        before = status_mb("VmRSS")
        reset_peak()
        started = time.perf_counter()
        result = await work()
        seconds = time.perf_counter() - started
        peak = status_mb("VmHWM")
        self.rows.append(
            [
                name,
                f"{before:.0f}",
                f"{peak:.0f}",
                f"{peak - before:+.0f}",
                f"{status_mb('VmRSS'):.0f}",
                f"{seconds * 1000:.0f}",
            ]
        )
        return result

    async def thread(self, name: str, work: Callable[[], T]) -> T:
        return await self.run(name, lambda: asyncio.to_thread(work))


def screener(folder: Path) -> Screener:
    """The generator's screener with every local check (Claude's review left out), the
    hashes in memory."""
    from shared.adapters.ocr import TesseractReader
    from shared.adapters.storage import LocalImageStorage
    from shared.adapters.unsafe import NudeNetClassifier
    from shared.domain.screening.phash import design_hashes
    from shared.domain.screening.settings import ScreeningSettings
    from shared.domain.screening.terms import DenyList
    from tests.support.hashes import MemoryHashes

    settings = ScreeningSettings()
    return Screener(
        storage=LocalImageStorage(folder / "store"),
        policy=settings.policy(),
        terms=DenyList.load(),
        reader=TesseractReader.from_settings(settings),
        unsafe=NudeNetClassifier.from_settings(settings),
        hash_image=design_hashes,
        hashes=MemoryHashes(),
    )


async def checks_alone(steps: Steps, screen: Screener, data: bytes) -> None:
    from shared.adapters.ocr import prepare
    from shared.domain.screening.phash import design_hashes

    assert screen.unsafe is not None and screen.reader is not None
    unsafe, reader = screen.unsafe, screen.reader
    await steps.thread("#0 hash alone", lambda: design_hashes(data))
    await steps.thread("#0 classifier alone", lambda: unsafe.classify(data))
    await steps.thread("#0 OCR prepare alone", lambda: prepare(data))
    await steps.run("#0 OCR read (with Tesseract)", lambda: reader.read_text(data))


async def measure(folder: Path, designs: int, burst: int, size: int) -> None:
    from bench.common import table
    from bench.screening import made
    from shared.platform.memory import settle_after_startup

    png_mb = statistics.mean((folder / f"{i}.png").stat().st_size for i in range(designs)) / 2**20
    screen = screener(folder)
    store = screen.storage
    settle_after_startup()
    steps = Steps()
    steps.rows.append(["idle (screener built)", "", f"{status_mb('VmRSS'):.0f}", "", "", ""])
    for i in range(designs):
        path = folder / f"{i}.png"
        prompt = (folder / f"{i}.txt").read_text()
        data = await steps.thread(f"#{i} download (bytes)", path.read_bytes)
        stored = await steps.thread(f"#{i} save", functools.partial(store.save, data))
        image = made("bench", i, prompt, stored.uri, stored.sha256, size)
        del data
        if i == 0:
            back = await steps.thread(
                "#0 read back",
                lambda: store.read(image.uri, sha256=image.sha256, max_bytes=1 << 30),  # noqa: B023
            )
            await checks_alone(steps, screen, back)
            del back
        await steps.run(f"#{i} screen (as the generator)", functools.partial(screen.screen, image))
    images = []
    for i in range(burst):
        source = (folder / f"{i % designs}.png").read_bytes()
        # Bytes after IEND make another file (the store dedupes identical bytes), the same
        # design to every decoder.
        stored = store.save(source + f"burst{i}".encode())
        images.append(made(f"burst-{i}", 0, "burst", stored.uri, stored.sha256, size))
        del source
    await steps.run(
        f"burst: {burst} designs screened at once",
        lambda: asyncio.gather(*(screen.screen(im) for im in images)),
    )
    print(
        table(
            f"Generator memory per step, {size} px art, {png_mb:.1f} MB PNGs "
            f"({datetime.now(UTC):%Y-%m-%d %H:%M} UTC, load average {os.getloadavg()[0]:.1f})",
            ["step", "RSS before", "peak", "rise", "RSS after", "ms"],
            steps.rows,
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=4096)
    parser.add_argument("--designs", type=int, default=4)
    parser.add_argument("--burst", type=int, default=6)
    parser.add_argument(
        "--grain", action="store_true", help="Noise over every pixel: PNGs as large as a model's"
    )
    parser.add_argument("--render-to", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.render_to is not None:
        render(args.render_to, args.designs, args.size, args.grain)
        return
    with tempfile.TemporaryDirectory(prefix="pod-bench-memory-") as tmp:
        folder = Path(tmp)
        subprocess.run(
            [
                sys.executable,
                __file__,
                "--render-to",
                tmp,
                "--designs",
                str(args.designs),
                "--size",
                str(args.size),
                *(["--grain"] if args.grain else []),
            ],
            check=True,
        )
        asyncio.run(measure(folder, args.designs, args.burst, args.size))


if __name__ == "__main__":
    main()
