"""Perceptual hashes of designs (near-duplicate screening, issue 29).

A design's hash is 64 bits from the DCT of its 32x32 greyscale (``imagehash.phash``): two
pictures a buyer would call the same design (resized, recompressed, cropped or rotated a
little, colour-shifted, a word changed) land a few bits apart, different art about 32 bits
apart. The corpus (tests/corpus/screening/duplicate_cases.jsonl) chose it over dhash, whash and
the average hash, and chose the default distance; its scores are in the module
``shared.domain.screening.duplicates``.

PostgreSQL has no unsigned 64-bit integer: the store keeps the 64 bits as a signed bigint (the
same bits, two's complement), and indexes the hash's four 16-bit chunks
(``shared.adapters.store.design_hashes``).
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

import imagehash
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from shared.platform.errors import PermanentError
from shared.platform.images import resized_png, thumbnail_size
from shared.platform.memory import large_decode

BITS = 64
CHUNK_BITS = 16
CHUNKS = BITS // CHUNK_BITS
_MASK = (1 << BITS) - 1
_CHUNK_MASK = (1 << CHUNK_BITS) - 1

# The most pixels a design may have to be hashed: a print file is up to ~6000x6000 (36 MP);
# past this a file is refused before its pixels are decoded (a decompression bomb: a few KiB
# of PNG that would decode to gigabytes). Pillow's own limit (Image.MAX_IMAGE_PIXELS) is a
# process-wide global the project does not change; this one is checked per call.
MAX_PIXELS = 64_000_000
# The hash reads a 32x32 greyscale: decoding reduced (JPEG's draft) and shrinking to this side
# first with the cheap box filter keeps a print-size image's hash at a few tens of ms, and
# changes no bit a full-size LANCZOS would set except on ties.
_WORK_SIDE = 256


class UnreadableImage(PermanentError):
    """Bytes that are not an image Pillow can decode, or one over ``MAX_PIXELS``."""


@dataclass(frozen=True)
class DesignHashes:
    """A design's hash, and the hash of its mirror image (a flipped copy of a listed design is
    the same design to a marketplace: the screener looks both up)."""

    phash: int
    mirrored: int


def reduced_grey(image: bytes, max_pixels: int = MAX_PIXELS) -> Image.Image:
    """The image decoded (at most ``_WORK_SIDE`` on its long side), flattened onto white, in
    greyscale: what the hash reads (UnreadableImage as ``perceptual_hash``)."""
    try:
        with warnings.catch_warnings():
            # Pillow warns (and past twice its limit raises) on huge images: ours is checked
            # below, before any pixel is decoded.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(image)) as img:
                width, height = img.size
                if width * height > max_pixels:
                    raise UnreadableImage(
                        f"image of {width}x{height} over the {max_pixels} pixels a design "
                        "may have to be hashed"
                    )
                small = _reduced(image, img)
                small = ImageOps.exif_transpose(small)
                if small.mode in ("RGBA", "LA", "PA") or "transparency" in small.info:
                    # A print file's transparent background is the garment: white here, not
                    # whatever colour the transparent pixels happen to hold.
                    rgba = small.convert("RGBA")
                    flat = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
                    flat.alpha_composite(rgba)
                    return flat.convert("L")
                return small.convert("L")
    except UnreadableImage:
        raise
    except Image.DecompressionBombError:
        # Past twice Pillow's own limit, Pillow refuses before we can look at its size.
        raise UnreadableImage(
            f"image over the {max_pixels} pixels a design may have to be hashed"
        ) from None
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise UnreadableImage(f"not a readable image: {type(exc).__name__}") from None


def _reduced(data: bytes, img: Image.Image) -> Image.Image:
    """``img`` as ``thumbnail`` at ``_WORK_SIDE`` leaves it: a print-size PNG decoded a strip
    at a time (the same pixels, never all of them at once), anything else whole."""
    size = thumbnail_size(img.width, img.height, (_WORK_SIDE, _WORK_SIDE))
    if size is not None:
        small = resized_png(data, size, Image.Resampling.BOX)
        if small is not None:
            return small
    # In place, before anything copies the pixels; a JPEG is decoded at 1/2..1/8 scale
    # directly (its draft mode).
    with large_decode(img.width * img.height):
        img.thumbnail((_WORK_SIDE, _WORK_SIDE), Image.Resampling.BOX, reducing_gap=2.0)
    return img


def _bits(h: imagehash.ImageHash) -> int:
    flat: np.ndarray = h.hash.flatten()
    out = 0
    for bit in flat:
        out = (out << 1) | int(bool(bit))
    return out


def perceptual_hash(image: bytes, *, max_pixels: int = MAX_PIXELS) -> int:
    """The design's 64-bit perceptual hash (unsigned). UnreadableImage for bytes Pillow cannot
    decode or an image over ``max_pixels``. CPU-bound (~10-60 ms): run it in a thread."""
    return _bits(imagehash.phash(reduced_grey(image, max_pixels)))


def design_hashes(image: bytes, *, max_pixels: int = MAX_PIXELS) -> DesignHashes:
    """The design's hash and its mirror image's, from one decode."""
    grey = reduced_grey(image, max_pixels)
    return DesignHashes(
        phash=_bits(imagehash.phash(grey)),
        mirrored=_bits(imagehash.phash(ImageOps.mirror(grey))),
    )


def _check(h: int) -> int:
    if not 0 <= h <= _MASK:
        raise ValueError(f"not a 64-bit hash: {h}")
    return h


def hamming(a: int, b: int) -> int:
    """Bits that differ between two hashes (0: the same picture to the hash)."""
    return (_check(a) ^ _check(b)).bit_count()


def to_hex(h: int) -> str:
    """16 lowercase hex digits (``Screening.phash``)."""
    return f"{_check(h):016x}"


def from_hex(text: str) -> int:
    """The hash of 16 hex digits; ValueError for anything else."""
    if len(text) != 16 or any(c not in "0123456789abcdefABCDEF" for c in text):
        raise ValueError(f"not 16 hex digits: {text[:40]!r}")
    return int(text, 16)


def to_signed(h: int) -> int:
    """The same 64 bits as a signed int64 (PostgreSQL bigint)."""
    h = _check(h)
    return h - (1 << BITS) if h >> (BITS - 1) else h


def from_signed(value: int) -> int:
    """The unsigned hash of a signed int64 (PostgreSQL bigint)."""
    if not -(1 << (BITS - 1)) <= value < (1 << (BITS - 1)):
        raise ValueError(f"not a signed 64-bit integer: {value}")
    return value & _MASK


def chunks(h: int) -> tuple[int, int, int, int]:
    """The hash's four 16-bit chunks, most significant first (the store indexes each)."""
    h = _check(h)
    c0, c1, c2, c3 = ((h >> (CHUNK_BITS * (CHUNKS - 1 - i))) & _CHUNK_MASK for i in range(CHUNKS))
    return c0, c1, c2, c3


def chunk_neighbours(chunk: int, radius: int) -> list[int]:
    """Every 16-bit value within ``radius`` bits of ``chunk`` (itself first): 1, 17, 137 and
    697 values for radius 0-3."""
    if not 0 <= chunk <= _CHUNK_MASK:
        raise ValueError(f"not a 16-bit chunk: {chunk}")
    if not 0 <= radius <= 3:
        raise ValueError(f"radius must be 0-3 (distance 0-15), not {radius}")
    out = [chunk]
    frontier = [(chunk, -1)]
    # Flip bits in increasing position order so each value is produced once.
    for _ in range(radius):
        nxt = []
        for value, last in frontier:
            for bit in range(last + 1, CHUNK_BITS):
                flipped = value ^ (1 << bit)
                out.append(flipped)
                nxt.append((flipped, bit))
        frontier = nxt
    return out
