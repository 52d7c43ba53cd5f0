"""The collector settings a service process takes after startup (``shared.platform.memory``)."""

from __future__ import annotations

import io
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from PIL import Image, ImageFile

from shared.platform.memory import LARGE_PIXELS, large_decode

# Run in a fresh interpreter: freezing the test process's own objects would outlive the test.
_PROBE = textwrap.dedent(
    """
    import gc, weakref
    from shared.platform.memory import settle_after_startup

    kept = [object() for _ in range(1000)]  # startup state: frozen
    settle_after_startup()
    frozen = gc.get_freeze_count()
    freed = 0

    def count(_ref):
        global freed
        freed += 1

    class Node:
        pass

    refs = []
    for _ in range(100_000):  # cyclic garbage: only the collector can free it
        a, b = Node(), Node()
        a.other, b.other = b, a
        refs.append(weakref.ref(a, count))
        del a, b
    print(frozen, freed)
    """
)


def test_cyclic_garbage_made_after_startup_is_still_collected() -> None:
    out = subprocess.run(
        [sys.executable, "-c", _PROBE], capture_output=True, text=True, check=True, timeout=60
    ).stdout.split()
    frozen, freed = int(out[0]), int(out[1])
    assert frozen >= 1000  # startup's objects are out of the collector's way
    # Passes still run on their own: at most one young generation's worth is left over.
    assert freed >= 90_000, f"only {freed} of 100000 cycles were collected"


# A print-size block freed, then another made: where glibc put the second one (mallinfo2's
# hblkhd: bytes in mmapped blocks, which go back to the system when freed), in MB.
_RETURN_PROBE = textwrap.dedent(
    """
    import ctypes, sys
    from shared.platform.memory import settle_after_startup

    class MallInfo2(ctypes.Structure):
        _fields_ = [(name, ctypes.c_size_t) for name in (
            "arena", "ordblks", "smblks", "hblks", "hblkhd",
            "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost",
        )]

    libc = ctypes.CDLL(None)
    libc.mallinfo2.restype = MallInfo2
    if sys.argv[1] == "settled":
        settle_after_startup()
    first = bytearray(16 << 20)  # one of Pillow's blocks of a print-size image
    del first
    second = bytearray(16 << 20)
    print(libc.mallinfo2().hblkhd >> 20)
    """
)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator")
def test_print_size_blocks_are_mapped_so_that_freeing_them_gives_them_back() -> None:
    # Unsettled, glibc raises its threshold at the first free and serves the second block from
    # a heap, where it stays resident once freed: the generator grew from 240 MB to 900 MB in a
    # 10-minute soak of 4096 px designs (bench/soak.py); settled, it stayed under 300 MB.
    def mapped(mode: str) -> int:
        out = subprocess.run(
            [sys.executable, "-c", _RETURN_PROBE, mode],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        )
        return int(out.stdout)

    assert mapped("settled") >= 16
    assert mapped("as started") == 0  # what the setting changes (glibc's default)


def _print_size_png(**save: Any) -> bytes:
    from simulators.comfyui.render import render_png

    # The generator's default art: sampled at 1024 px, upscaled x4 (the ComfyUI simulator).
    png = render_png('a fox, the text "STAY WILD"', 7, 1024, 1024, 0, 4096, 4096)
    if not save:
        return png
    with Image.open(io.BytesIO(png)) as img:
        out = io.BytesIO()
        img.save(out, format="PNG", compress_level=1, **save)
        return out.getvalue()


def _full_size_decodes(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int]]:
    """The sizes of the print-size images decoded whole from now on."""
    seen: list[tuple[int, int]] = []
    real_load = ImageFile.ImageFile.load

    def load(self: ImageFile.ImageFile) -> Any:
        if self.width * self.height > LARGE_PIXELS:
            seen.append(self.size)
        return real_load(self)

    monkeypatch.setattr(ImageFile.ImageFile, "load", load)
    return seen


def test_a_designs_checks_never_decode_a_print_size_png_whole(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Each check decoded the 4096 px design whole (64 MB of pixels, three times a design): the
    # generator worked at 290-405 MB (bench/results/soak.md). Now they scale it strip by strip.
    from shared.adapters.ocr import prepare
    from shared.adapters.unsafe import decode_scaled
    from shared.domain.screening.phash import design_hashes

    png = _print_size_png()
    whole = _full_size_decodes(monkeypatch)
    design_hashes(png)
    prepare(png)
    decode_scaled(png, max_pixels=8192 * 8192, side=320)
    assert whole == []


def test_a_designs_checks_decode_one_print_size_image_at_a_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from shared.adapters.ocr import prepare
    from shared.adapters.unsafe import decode_scaled
    from shared.domain.screening.phash import design_hashes

    # With EXIF (an orientation the hash applies): decoded whole, so one at a time.
    exif = Image.Exif()
    exif[0x0112] = 1
    png = _print_size_png(exif=exif)
    lock = threading.Lock()
    decoding = 0
    most = 0
    entered = threading.Event()
    real_load = ImageFile.ImageFile.load

    def load(self: ImageFile.ImageFile) -> Any:
        # Counts the full-size decodes under way; each waits (up to a deadline) for another
        # one to begin beside it, which only the bound prevents.
        nonlocal decoding, most
        if self.width * self.height <= LARGE_PIXELS:
            return real_load(self)
        with lock:
            decoding += 1
            most = max(most, decoding)
            if decoding > 1:
                entered.set()
        entered.wait(0.5)
        try:
            return real_load(self)
        finally:
            with lock:
                decoding -= 1

    monkeypatch.setattr(ImageFile.ImageFile, "load", load)
    checks = [
        lambda: design_hashes(png),
        lambda: prepare(png),
        lambda: decode_scaled(png, max_pixels=8192 * 8192, side=320),
    ]
    start = threading.Barrier(len(checks) * 2)

    def run(check: Callable[[], object]) -> object:
        start.wait(10)
        return check()

    # Two designs' checks at once: the screener's gate lets one design per CPU in.
    with ThreadPoolExecutor(len(checks) * 2) as pool:
        results = list(pool.map(run, checks * 2))
    assert len(results) == 6
    assert most == 1, f"{most} print-size images were decoded at once"
    # Smaller images are not held up: the bound is for print-size ones only.
    with large_decode(LARGE_PIXELS), large_decode(LARGE_PIXELS):
        pass
