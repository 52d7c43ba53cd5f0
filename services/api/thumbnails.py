"""The dashboard's previews of a job's art: small WebP files rendered once per image, on disk.

A print file is up to ``IMAGE_MAX_BYTES`` (64 MiB) and tens of megapixels. A preview request
must not read it each time, nor hold it whole as bytes: the first request for an image checks
the file's digest in blocks, has Pillow decode it from the open file (one decode at a time in
this process, and only up to ``THUMBNAIL_MAX_PIXELS``, so the memory a render takes is bounded),
and writes every size at once under ``<cache>/<aa>/<sha256>-<size>.v1.webp``. Every later
request is a small file (and, with ``If-None-Match``, a 304 that reads nothing). The file name
follows from the image's digest, so a regenerated image gets previews of its own.
"""

from __future__ import annotations

import logging
import os
import tempfile
import threading
from pathlib import Path
from typing import BinaryIO

from PIL import Image, UnidentifiedImageError

from shared.adapters.storage import ImageReadError, ImageStore

logger = logging.getLogger(__name__)

# The sizes (longest side, pixels) a preview comes in: a fixed few, so the cache holds at most
# this many files per image whatever callers ask. The dashboard shows 156 px (2x: 320).
SIZES = (160, 320, 640)
# Bumped when the rendering changes: old files are then simply not found again.
VERSION = "v1"
_QUALITY = 80

# One decode at a time in this process: a render's memory is one image's pixels at most.
_render_lock = threading.Lock()


class TooLarge(ImageReadError):
    """An image with more pixels than a preview may decode."""


class ThumbnailCache:
    """Rendered previews under ``root`` (created on first use)."""

    def __init__(self, root: Path, *, max_pixels: int) -> None:
        self.root = root
        self.max_pixels = max_pixels

    def path(self, sha256: str, size: int) -> Path:
        """Where the preview of this image at this size is kept."""
        return self.root / sha256[:2] / f"{sha256}-{size}.{VERSION}.webp"

    @staticmethod
    def etag(sha256: str, size: int) -> str:
        """A strong validator: the content follows from the image's digest, size and VERSION."""
        return f'"{sha256}-{size}-{VERSION}"'

    def get(self, store: ImageStore, uri: str, *, sha256: str, size: int, max_bytes: int) -> Path:
        """The preview's file, rendered now if it is not yet (blocking: call it off the loop).
        ImageReadError when the image cannot be read or decoded, TooLarge past the pixel cap."""
        wanted = self.path(sha256, size)
        if wanted.is_file():
            return wanted
        with _render_lock:
            if wanted.is_file():  # rendered while this request waited
                return wanted
            with store.open(uri, sha256=sha256, max_bytes=max_bytes) as source:
                self._render(source, sha256)
        return wanted

    def _render(self, source: BinaryIO, sha256: str) -> None:
        try:
            with Image.open(source) as image:
                width, height = image.size
                if width * height > self.max_pixels:
                    raise TooLarge(
                        f"{width}x{height} is over THUMBNAIL_MAX_PIXELS ({self.max_pixels})"
                    )
                image.load()
                current = image if image.mode in ("RGB", "RGBA") else image.convert("RGBA")
                # Largest first, each from the one before: one pass over the full image.
                for size in sorted(SIZES, reverse=True):
                    current = current.copy()
                    current.thumbnail((size, size), Image.Resampling.LANCZOS, reducing_gap=3.0)
                    self._write(current, self.path(sha256, size))
        except (UnidentifiedImageError, Image.DecompressionBombError, OSError, ValueError) as exc:
            if isinstance(exc, ImageReadError):
                raise
            raise ImageReadError(f"not a readable image: {type(exc).__name__}") from None
        logger.info("thumbnails rendered sha256=%s sizes=%s", sha256[:12], len(SIZES))

    @staticmethod
    def _write(image: Image.Image, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as out:
                image.save(out, format="WEBP", quality=_QUALITY, method=4)
            os.replace(tmp, path)  # readers see the whole file or none
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
