"""Garbage-collector settings for a long-running service process.

CPython's cyclic collector runs a young-generation pass every 700 net allocations of tracked
objects and, every 10 of those, an older one, up to a full pass that walks every tracked object:
the imported modules (the Anthropic SDK, pydantic's models, psycopg) included. A stage allocates
thousands of short-lived objects per job (JSON bodies, events, HTTP requests), so on the
pipeline benchmark the collector took 3.5-9 % of each service's CPU (``perf``). Nearly all that
is alive once startup is done stays alive for the life of the process: frozen, no pass walks it
again. A larger young generation makes the passes rarer; the cycles it may hold between two
passes are a few megabytes at most.

Print-size images are the other cost. glibc serves a large allocation from mmap and gives it
back when freed, but after the first such free it raises that threshold to the block's size, so
later blocks of print-size images (Pillow allocates them in blocks of up to 16 MB) come from the
heaps of whichever threads decoded them, and stay resident after use: on ``bench/soak.py`` the
generator, which decodes every 4096 px design three times (OCR, hash, classifier), grew from
240 MB to over 600 MB. A fixed threshold keeps them returned; :func:`large_decode` keeps one
print-size decode at a time in a process (64 MB of pixels at 4096 px, in RGB). A PNG, the
generator's own art, is no longer decoded whole at all (shared.platform.images scales it a strip
at a time); the bound is for what still is (a JPEG's reduced draft, a PNG with an orientation).
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import gc
import logging
import sys
import threading
from collections.abc import Iterator
from typing import Any

logger = logging.getLogger(__name__)

YOUNG_THRESHOLD = 10_000

# glibc's mallopt(3) parameter, from <malloc.h>.
_M_MMAP_THRESHOLD = -3
# Allocations from this size up are mmapped and unmapped on free: images and large bodies,
# never the interpreter's small objects (pymalloc serves those from its own arenas).
MMAP_THRESHOLD = 1 << 20
# An image of more pixels than this is print-size (2048 x 2048: 16 MB in RGB as Pillow holds
# it, 4 bytes a pixel); smaller ones decode without waiting for each other.
LARGE_PIXELS = 2048 * 2048
_LARGE_DECODES = threading.BoundedSemaphore(1)


def settle_after_startup() -> None:
    """Collect once, freeze what startup left alive, space out the collector's passes, and
    have large blocks returned to the system when freed (:func:`return_large_blocks`)."""
    gc.collect()
    gc.freeze()
    _young, older, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, older, oldest)
    returned = return_large_blocks()
    trimmed = release_free_memory()
    logger.info(
        "gc settled frozen=%d thresholds=%s large_blocks_returned=%s trimmed=%s",
        gc.get_freeze_count(),
        gc.get_threshold(),
        returned,
        trimmed,
    )


def return_large_blocks(threshold: int = MMAP_THRESHOLD) -> bool:
    """Fix glibc's mmap threshold at ``threshold`` bytes (mallopt M_MMAP_THRESHOLD), which also
    stops it rising: every block that large is unmapped when freed. False where the C library
    has no such setting (not glibc: musl's mallopt is a stub that refuses)."""
    mallopt = _libc("mallopt", [ctypes.c_int, ctypes.c_int])
    return mallopt is not None and mallopt(_M_MMAP_THRESHOLD, threshold) == 1


def release_free_memory() -> bool:
    """Hand the pages glibc's heaps hold free back to the system (malloc_trim(3) with no pad:
    every arena, not only the top of the main heap). Memory freed in many small blocks stays
    in the heap of the thread that freed it otherwise: what loading a model left behind at
    start (17 MB for the classifier's session), and what a design's checks, run in worker
    threads, leave scattered over their threads' arenas. Takes a few milliseconds; False where
    the C library has no such call."""
    malloc_trim = _libc("malloc_trim", [ctypes.c_size_t])
    if malloc_trim is None:
        return False
    malloc_trim(0)
    return True


@functools.cache
def _libc_handle() -> ctypes.CDLL | None:
    """The process's own C library (None off Linux, or where it cannot be opened)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None)
    except OSError:
        return None


def _libc(name: str, argtypes: list[Any]) -> Any | None:
    """A C library function taking ``argtypes`` and returning an int; None where the C
    library has no such function (not glibc)."""
    libc = _libc_handle()
    func = getattr(libc, name, None) if libc is not None else None
    if func is None:
        return None
    func.argtypes = argtypes
    func.restype = ctypes.c_int
    return func


@contextlib.contextmanager
def large_decode(pixels: int) -> Iterator[None]:
    """Around decoding an image of ``pixels`` pixels and scaling it down: a print-size one
    waits for the one being decoded in another thread of this process, so that a design's
    checks, run side by side, hold one full-size copy at a time rather than one each."""
    if pixels <= LARGE_PIXELS:
        yield
        return
    with _LARGE_DECODES:
        yield
