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
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

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


def render(out: Path, designs: int, size: int) -> None:
    """``designs`` PNGs at ``size`` px as the ComfyUI simulator makes them (a 1024 px sample
    scaled up), half of them with a slogan for OCR to read."""
    from simulators.comfyui.render import render_png

    for i in range(designs):
        prompt = f"a retro sunset over rolling hills, design {i}"
        if i % 2:
            prompt += ' with the text "STAY WILD" in bold letters'
        data = render_png(prompt, i, 1024, 1024, out_width=size, out_height=size)
        (out / f"{i}.png").write_bytes(data)
        (out / f"{i}.txt").write_text(prompt)


async def measure(folder: Path, designs: int, burst: int, size: int) -> None:
    # The generator's modules, imported as it imports them (its idle RSS is theirs).
    import services.generator.handler  # noqa: F401
    from bench.common import table
    from bench.screening import made
    from services.generator.screening import Screener
    from shared.adapters.ocr import TesseractReader, prepare
    from shared.adapters.storage import LocalImageStorage
    from shared.adapters.unsafe import NudeNetClassifier
    from shared.domain.screening.phash import design_hashes
    from shared.domain.screening.settings import ScreeningSettings
    from shared.domain.screening.terms import DenyList
    from shared.platform.memory import settle_after_startup
    from tests.support.hashes import MemoryHashes

    settings = ScreeningSettings()
    store = LocalImageStorage(folder / "store")
    screener = Screener(
        storage=store,
        policy=settings.policy(),
        terms=DenyList.load(),
        reader=TesseractReader.from_settings(settings),
        unsafe=NudeNetClassifier.from_settings(settings),
        hash_image=design_hashes,
        hashes=MemoryHashes(),
    )
    settle_after_startup()
    rows: list[list[str]] = []

    async def step(name: str, work: Callable[[], Awaitable[object]]) -> object:
        before = status_mb("VmRSS")
        reset_peak()
        started = time.perf_counter()
        result = await work()
        seconds = time.perf_counter() - started
        peak = status_mb("VmHWM")
        rows.append(
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

    def later(fn: Callable[[], object]) -> Callable[[], Awaitable[object]]:
        return lambda: asyncio.to_thread(fn)

    rows.append(["idle (screener built)", "", f"{status_mb('VmRSS'):.0f}", "", "", ""])
    for i in range(designs):
        path = folder / f"{i}.png"
        prompt = (folder / f"{i}.txt").read_text()
        data = await step(f"#{i} download (bytes)", later(path.read_bytes))
        assert isinstance(data, bytes)
        stored = await step(f"#{i} save", later(lambda data=data: store.save(data)))
        image = made("bench", i, prompt, stored.uri, stored.sha256, size)  # type: ignore[attr-defined]
        del data
        if i == 0:
            back = await step(
                "#0 read back",
                later(lambda: store.read(image.uri, sha256=image.sha256, max_bytes=1 << 30)),
            )
            assert isinstance(back, bytes)
            await step("#0 hash alone", later(lambda: design_hashes(back)))
            await step("#0 classifier alone", later(lambda: screener.unsafe.classify(back)))  # type: ignore[union-attr]
            await step("#0 OCR prepare alone", later(lambda: prepare(back)))
            await step("#0 OCR read (with Tesseract)", lambda: screener.reader.read_text(back))  # type: ignore[union-attr]
            del back
        await step(f"#{i} screen (as the generator)", lambda image=image: screener.screen(image))
    images = []
    for i in range(burst):
        source = (folder / f"{i % designs}.png").read_bytes()
        # A distinct design each (one byte of the PNG's trailing chunk changed is another
        # file): the store dedupes identical bytes.
        stored = store.save(source + f"burst{i}".encode())
        images.append(made(f"burst-{i}", 0, "burst", stored.uri, stored.sha256, size))
        del source
    await step(
        f"burst: {burst} designs screened at once",
        lambda: asyncio.gather(*(screener.screen(im) for im in images)),
    )
    print(
        table(
            f"Generator memory per step, {size} px art ({datetime.now(UTC):%Y-%m-%d %H:%M} UTC, "
            f"load average {os.getloadavg()[0]:.1f})",
            ["step", "RSS before", "peak", "rise", "RSS after", "ms"],
            rows,
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=4096)
    parser.add_argument("--designs", type=int, default=4)
    parser.add_argument("--burst", type=int, default=6)
    parser.add_argument("--render-to", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.render_to is not None:
        render(args.render_to, args.designs, args.size)
        return
    with tempfile.TemporaryDirectory(prefix="pod-bench-memory-") as tmp:
        folder = Path(tmp)
        subprocess.run(
            [sys.executable, __file__, "--render-to", tmp, "--designs", str(args.designs)]
            + ["--size", str(args.size)],
            check=True,
        )
        asyncio.run(measure(folder, args.designs, args.burst, args.size))


if __name__ == "__main__":
    main()
