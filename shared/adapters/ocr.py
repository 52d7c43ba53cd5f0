"""OCR of the text rendered into a design: Tesseract, Debian's ``tesseract-ocr``, run as a
subprocess (image on stdin, text on stdout: no temporary files).

Designs are not pages: a slogan in bold outlined letters over a gradient and shapes, dark on
light or light on dark. Tesseract given the design as it is reads little of it (its one global
threshold splits the background instead of the letters). Measured on the corpus
(tests/corpus/screening/ocr_cases.jsonl, 60 designs, Tesseract 5.3.0; character recall / word
recall / cases of protected text found, of 40 / CPU per design):

- the design as it is, default page layout (mode 3): 0.66 / 0.54 / 17 / 200 ms;
- sparse text (mode 11), 800 px: 0.75 / 0.61 / 19 / 240 ms; with its negative: no better, twice
  the cost;
- near-black and near-white pixels each as a black-on-white copy (mode 11, 800 px): 0.97 /
  0.90 / 34 / 400 ms; with the gray copy too: 0.975 / 0.92 / 35 / 620 ms (the defaults: the
  gray pass also reads coloured lettering, which neither mask keeps);
- the same three at 600 px: 33 found; at 1024 px: 32; mode 12 instead of 11: 34 at 840 ms;
  mode 3: 34.

So each pass is a grayscale copy scaled to :data:`READ_SIDE` on its longer side (print-size
art, ~5000 px, is reduced: the letters need far fewer pixels; a small render is enlarged), read
as sparse text (mode 11, "as much text as possible in no particular order"), which finds lines
anywhere on the art where the page layout analysis looks for columns.
"""

from __future__ import annotations

import asyncio
import io
import logging
import os
import re
import shutil
import subprocess
import time

from PIL import Image, ImageOps, UnidentifiedImageError

from shared.domain.screening.settings import ScreeningSettings
from shared.platform.errors import ConfigError, PermanentError, RetryableError, VendorTimeout
from shared.platform.images import resized_png
from shared.platform.memory import large_decode

log = logging.getLogger(__name__)

TESSERACT = "tesseract"
# The longer side of the copy Tesseract reads (see the module's docstring).
READ_SIDE = 800
# Sparse text: lines anywhere on the design, in no particular reading order.
PSM = 11
# What of a failing run's stderr goes into the error (Tesseract's own messages; it is never
# given anything secret).
_STDERR_CHARS = 400
# The copies read: "gray" as it is (Tesseract's own threshold), "invert" its negative, "dark" only
# its near-black pixels and "light" only its near-white ones, each as black on white.
PASS_NAMES = ("gray", "invert", "dark", "light")
PASSES: tuple[str, ...] = ("gray", "dark", "light")
_DARK = [0 if v < 64 else 255 for v in range(256)]
_LIGHT = [0 if v > 191 else 255 for v in range(256)]
# A word is kept only if it has a letter or digit: outlines and shapes read as "|", "~", "—".
_WORD = re.compile(r"[^\W_]")


def tesseract_path(binary: str = TESSERACT) -> str | None:
    """The Tesseract executable on PATH (or ``binary`` itself when it is a path), None when it
    is not installed."""
    return shutil.which(binary)


def tesseract_available(binary: str = TESSERACT) -> bool:
    """Whether Tesseract and its English data are installed (``pod doctor``, the tests' skip)."""
    path = tesseract_path(binary)
    if path is None:
        return False
    try:
        done = subprocess.run(
            [path, "--list-langs"], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0 and "eng" in done.stdout.split()


def usable_cpus() -> int:
    """The CPUs this process may run on (a container's cpuset, not the host's count)."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def one_line(text: str) -> str:
    """Tesseract's output as one line of words (lines joined, runs of blanks one space, the
    words with no letter or digit, the background's shapes, dropped)."""
    return " ".join(w for w in text.split() if _WORD.search(w))


def prepare(
    image: bytes, *, read_side: int = READ_SIDE, passes: tuple[str, ...] = PASSES
) -> list[bytes]:
    """The copies of ``image`` Tesseract reads, one per pass (:data:`PASS_NAMES`), each scaled
    to ``read_side`` on its longer side, as PGM (no compression to spend CPU on). CPU-bound
    (run it in a thread). Not an image: a PermanentError."""
    try:
        with Image.open(io.BytesIO(image)) as img:
            size, resample = _read_size(img.size, read_side)
            strips = (
                resized_png(image, size, resample, convert=_flattened)
                if resample == Image.Resampling.BOX
                else None
            )
            if strips is not None:
                # A print-size PNG, scaled a strip at a time: the same pixels as below.
                gray = strips
            else:
                # A JPEG decodes straight at a fraction of its size when that is all it needs.
                img.draft("L", (read_side, read_side))
                with large_decode(img.width * img.height):
                    gray = _scaled(_flattened(img), read_side)
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as exc:
        raise PermanentError(f"OCR: not a readable image ({exc})", vendor="tesseract") from exc
    out = []
    for name in passes:
        copy = gray
        if name == "invert":
            copy = ImageOps.invert(gray)
        elif name == "dark":
            copy = gray.point(_DARK)
        elif name == "light":
            copy = gray.point(_LIGHT)
        elif name != "gray":
            raise ConfigError(f"OCR: no pass {name!r} (one of {', '.join(PASS_NAMES)})")
        buf = io.BytesIO()
        copy.save(buf, format="PPM")
        out.append(buf.getvalue())
    return out


def _read_size(
    size: tuple[int, int], read_side: int
) -> tuple[tuple[int, int], Image.Resampling | None]:
    """The size Tesseract reads an image of ``size`` at (``read_side`` on its longer side), and
    the filter that scales it there (None: within 5 %, left as it is)."""
    scale = read_side / max(size)
    if abs(scale - 1) <= 0.05:
        return size, None
    out = (max(1, round(size[0] * scale)), max(1, round(size[1] * scale)))
    # Reducing: averages the upscaler's repeated pixels; enlarging: smooth letter edges.
    return out, Image.Resampling.BOX if scale < 1 else Image.Resampling.BICUBIC


def _scaled(gray: Image.Image, read_side: int) -> Image.Image:
    """``gray`` with ``read_side`` pixels on its longer side (within 5 %: left as it is).
    Reduced by whole blocks first down to twice that (reducing_gap): what a print-size PNG's
    strips give (shared.platform.images), and what Pillow's documentation calls "very close
    to fair resampling"."""
    size, resample = _read_size(gray.size, read_side)
    if resample is None:
        return gray
    return gray.resize(size, resample, reducing_gap=2.0)


def _flattened(img: Image.Image) -> Image.Image:
    """``img`` in grayscale, its transparent parts (a print file's background usually is) over
    mid-gray: dropping the alpha would leave what is under it, often black, and black lettering
    would vanish into it; over gray, dark and light lettering both stand out."""
    if img.mode in ("RGBA", "LA", "PA") or "transparency" in img.info:
        rgba = img.convert("RGBA")
        ground = Image.new("RGBA", rgba.size, (128, 128, 128, 255))
        return ImageOps.grayscale(Image.alpha_composite(ground, rgba))
    return ImageOps.grayscale(img)


class TesseractReader:
    """:class:`shared.domain.screening.checks.TextReader` by the ``tesseract`` binary.

    At most ``concurrency`` images are read at once (default: one per CPU; each Tesseract is
    held to one thread, so that is the machine's cores and no more). One image's reading,
    preparation included, takes at most ``timeout_s``: past it the process is killed and the
    read fails with :class:`VendorTimeout` (retryable).
    """

    def __init__(
        self,
        *,
        timeout_s: float = 20.0,
        concurrency: int | None = None,
        binary: str = TESSERACT,
        psm: int = PSM,
        read_side: int = READ_SIDE,
        passes: tuple[str, ...] = PASSES,
    ) -> None:
        path = tesseract_path(binary)
        if path is None:
            raise ConfigError(
                f"OCR: no {binary!r} executable on PATH; install Debian's tesseract-ocr and "
                "tesseract-ocr-eng (scripts/bootstrap.sh does as root), or turn the check off "
                'with SCREENING_CHECKS_OFF=["rendered_text"]'
            )
        if timeout_s <= 0:
            raise ConfigError(f"OCR: timeout_s must be > 0, got {timeout_s}")
        if concurrency is not None and concurrency < 1:
            raise ConfigError(f"OCR: concurrency must be >= 1, got {concurrency}")
        self._path = path
        self._timeout_s = timeout_s
        self._psm = psm
        self._read_side = read_side
        self._passes = passes
        self.concurrency = concurrency or usable_cpus()
        self._slots = asyncio.Semaphore(self.concurrency)
        # Just what Tesseract needs: one OpenMP thread (the semaphore is the parallelism; its
        # threads would only fight the other readers for the same cores), and where its data is.
        self._env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "OMP_THREAD_LIMIT": "1"}
        if "TESSDATA_PREFIX" in os.environ:
            self._env["TESSDATA_PREFIX"] = os.environ["TESSDATA_PREFIX"]

    @classmethod
    def from_settings(cls, settings: ScreeningSettings) -> TesseractReader:
        """The deployment's reader (its timeout; one at a time per CPU)."""
        return cls(timeout_s=settings.screening_ocr_timeout_s)

    async def read_text(self, image: bytes) -> str:
        """The text rendered into ``image``, as one line of words ("" when it has none)."""
        async with self._slots:
            started = time.perf_counter()
            try:
                async with asyncio.timeout(self._timeout_s):
                    copies = await asyncio.to_thread(
                        prepare, image, read_side=self._read_side, passes=self._passes
                    )
                    texts = [await self._run(copy) for copy in copies]
            except TimeoutError:
                raise VendorTimeout(
                    f"OCR: tesseract took longer than {self._timeout_s:g} s", vendor="tesseract"
                ) from None
        # The passes often read the same line: once is enough (a matcher sees it all the same).
        lines = list(dict.fromkeys(t for t in (one_line(t) for t in texts) if t))
        text = " ".join(lines)
        log.debug("ocr read chars=%d ms=%.0f", len(text), (time.perf_counter() - started) * 1000)
        return text

    async def _run(self, image: bytes) -> str:
        proc = await asyncio.create_subprocess_exec(
            self._path,
            "stdin",
            "stdout",
            "-l",
            "eng",
            "--psm",
            str(self._psm),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=self._env,
        )
        try:
            out, err = await proc.communicate(image)
        finally:
            # Timed out or cancelled mid-read: the process must not outlive its reader.
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        if proc.returncode != 0:
            stderr = err.decode(errors="replace").strip()[-_STDERR_CHARS:]
            raise RetryableError(
                f"OCR: tesseract exited {proc.returncode}: {stderr or '(no message)'}",
                vendor="tesseract",
            )
        return out.decode(errors="replace")
