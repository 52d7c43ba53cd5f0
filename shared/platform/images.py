"""A print-size PNG scaled down without ever holding its full-size pixels.

Screening reads a design at a few hundred pixels (the hash at 256, the classifier at 320, OCR at
800), but Pillow decodes a PNG whole: a 4096 px design is 64 MB of pixels (RGB held at 4 bytes a
pixel) before it is scaled, on top of a generator that idles at ~250 MB (bench/memory.py). PNG
has no reduced decode (JPEG's draft), so this decodes the file in strips of rows instead.

A PNG's pixels are one zlib stream of rows, each filtered against the row above it. The stream
is inflated here a strip at a time; each strip is handed to Pillow as a small PNG of its own
(same header, palette and transparency; the stream stored uncompressed), preceded by the last
row of the strip before, unfiltered, so that the strip's first row unfilters against the right
pixels. Pillow decodes each strip exactly as it decodes those rows of the whole file.

Scaling, as Pillow's ``resize(..., reducing_gap=...)`` and ``thumbnail`` do it, is an integer
``reduce`` (a mean over blocks of pixels) and then the filter on the reduced image. The reduce
is done per strip, strips a whole number of blocks high, so the reduced image is the one
``reduce`` makes of the whole; then the same filter over the same box. The result is Pillow's
own, pixel for pixel (tests/shared/platform/test_images.py compares them), at a strip's memory
(:data:`STRIP_BYTES` of inflated rows) instead of the whole image's.

Anything else (not a PNG, interlaced, not 8 bits a sample, animated, with EXIF or XMP metadata
that may rotate it, truncated, a bad checksum of a chunk other than the pixels', or too small
to be reduced) is left to the caller's whole decode: :func:`resized_png` returns None.
"""

from __future__ import annotations

import io
import math
import struct
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from PIL import Image

_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Samples per pixel of an 8-bit PNG by colour type: grey, RGB, palette, grey+alpha, RGBA.
_SAMPLES = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}
# Chunks before the pixels that change what the pixels mean: copied into every strip.
_KEPT = frozenset({b"PLTE", b"tRNS"})
# Metadata Pillow reads an orientation from (ImageOps.exif_transpose): such a file is decoded
# whole, so that a caller that rotates it sees what it saw before.
_TEXT = frozenset({b"tEXt", b"zTXt", b"iTXt"})
_ORIENTING_KEYWORDS = (b"Raw profile type exif\x00", b"XML:com.adobe.xmp\x00")
# Inflated rows per strip (about): a strip of a 4096 px RGB design is ~40 rows, under 1 MB
# once Pillow holds it at 4 bytes a pixel.
STRIP_BYTES = 512 << 10

Convert = Callable[[Image.Image], Image.Image]


class _Unsuited(Exception):
    """The file is not one this module decodes in strips (the caller decodes it whole)."""


@dataclass
class _Png:
    width: int
    height: int
    colour: int
    kept: list[bytes] = field(default_factory=list)
    pixels: list[memoryview] = field(default_factory=list)

    @property
    def stride(self) -> int:
        """Bytes of one inflated row: its filter byte, then its samples."""
        return 1 + self.width * _SAMPLES[self.colour]


def _chunk(kind: bytes, body: bytes) -> bytes:
    return (
        struct.pack(">I", len(body))
        + kind
        + body
        + struct.pack(">I", zlib.crc32(body, zlib.crc32(kind)))
    )


def _header(png: _Png, height: int) -> bytes:
    return _chunk(b"IHDR", struct.pack(">IIBBBBB", png.width, height, 8, png.colour, 0, 0, 0))


def _chunks(data: bytes) -> Iterator[tuple[bytes, memoryview, memoryview]]:
    """Each chunk's type, body and whole bytes (views, no copy), its checksum checked but the
    pixels' (as Pillow skips them: the zlib stream has its own, and the store checked the file's
    digest)."""
    if not data.startswith(_SIGNATURE):
        raise _Unsuited("not a PNG")
    view = memoryview(data)
    pos = len(_SIGNATURE)
    while pos + 12 <= len(data):
        length, kind = struct.unpack_from(">I4s", data, pos)
        end = pos + 8 + length
        if end + 4 > len(data):
            raise _Unsuited("truncated")
        body = view[pos + 8 : end]
        (crc,) = struct.unpack_from(">I", data, end)
        if kind != b"IDAT" and zlib.crc32(body, zlib.crc32(kind)) != crc:
            raise _Unsuited(f"bad checksum of {kind!r}")
        yield kind, body, view[pos : end + 4]
        pos = end + 4


def _parse(data: bytes) -> _Png:
    """The header, the chunks kept for every strip and the compressed pixels."""
    png: _Png | None = None
    for kind, body, whole in _chunks(data):
        if kind == b"IHDR":
            width, height, depth, colour, method, filtering, interlace = struct.unpack_from(
                ">IIBBBBB", body
            )
            if depth != 8 or colour not in _SAMPLES or (method, filtering, interlace) != (0, 0, 0):
                raise _Unsuited("not 8-bit, or interlaced")
            png = _Png(width, height, colour)
        elif png is None:
            raise _Unsuited("no IHDR first")
        elif kind == b"IDAT":
            png.pixels.append(body)
        elif kind in _KEPT:
            png.kept.append(bytes(whole))
        elif kind in (b"eXIf", b"acTL") or (
            kind in _TEXT and bytes(body[:24]).startswith(_ORIENTING_KEYWORDS)
        ):
            raise _Unsuited(f"{kind!r}: metadata or frames")
        elif kind == b"IEND":
            break
    if png is None or not png.pixels or png.width == 0 or png.height == 0:
        raise _Unsuited("no pixels")
    return png


def _rows(png: _Png, rows: int) -> Iterator[bytes]:
    """The inflated rows, ``rows`` at a time (the last strip: what is left)."""
    inflate = zlib.decompressobj()
    compressed = iter(png.pixels)
    pending = bytearray()
    tail = b""
    left = png.height
    while left:
        need = min(rows, left) * png.stride
        while len(pending) < need:
            source = tail or next(compressed, None)
            if source is None:
                raise _Unsuited("pixels end early")
            try:
                pending += inflate.decompress(source, need - len(pending))
            except zlib.error as exc:
                raise _Unsuited(f"pixels do not inflate: {exc}") from None
            tail = inflate.unconsumed_tail
        yield bytes(pending[:need])
        del pending[:need]
        left -= min(rows, left)


def _strips(png: _Png, rows: int) -> Iterator[tuple[Image.Image, int]]:
    """Each strip decoded by Pillow, with the row its own pixels start at (1: the first row is
    the strip before's last, there for the filters)."""
    head = _SIGNATURE
    tail = _chunk(b"IEND", b"")
    before: bytes | None = None
    for inflated in _rows(png, rows):
        count = len(inflated) // png.stride
        height = count if before is None else count + 1
        # The row above, unfiltered (filter type 0): the strip's first row unfilters against it.
        stored = zlib.compressobj(0)
        pixels = b"" if before is None else stored.compress(b"\x00" + before)
        pixels += stored.compress(inflated) + stored.flush()
        del inflated
        crc = zlib.crc32(pixels, zlib.crc32(b"IDAT"))
        small = b"".join(
            [
                head,
                _header(png, height),
                *png.kept,
                struct.pack(">I", len(pixels)),
                b"IDAT",
                pixels,
                struct.pack(">I", crc),
                tail,
            ]
        )
        del pixels
        strip = Image.open(io.BytesIO(small))
        strip.load()
        del small
        before = strip.crop((0, height - 1, png.width, height)).tobytes()
        yield strip, height - count


def thumbnail_size(width: int, height: int, most: tuple[int, int]) -> tuple[int, int] | None:
    """The size ``Image.thumbnail(most)`` gives a ``width`` x ``height`` image (None: it is
    within ``most`` already, left as it is): Pillow's own rounding of the aspect ratio."""
    x, y = most
    if x >= width and y >= height:
        return None
    aspect = width / height

    def round_aspect(number: float, key: Callable[[int], float]) -> int:
        return max(min(math.floor(number), math.ceil(number), key=key), 1)

    if x / y >= aspect:
        x = round_aspect(y * aspect, key=lambda n: abs(aspect - n / y))
    else:
        y = round_aspect(x / aspect, key=lambda n: 0 if n == 0 else abs(aspect - x / n))
    return x, y


def resized_png(
    data: bytes,
    size: tuple[int, int],
    resample: Image.Resampling,
    *,
    convert: Convert | None = None,
    reducing_gap: float = 2.0,
) -> Image.Image | None:
    """``convert(img).resize(size, resample, reducing_gap=reducing_gap)`` of the PNG ``data``
    (``img`` as Pillow opens and loads it; ``convert``: a per-pixel change of mode, such as
    flattening transparency or greyscale), pixel for pixel, decoded a strip at a time. None
    where that cannot be done so (see the module): the caller decodes the image whole.

    Bytes are untrusted: a file that is not what its header says ends in None (or in Pillow's
    own error for a strip), never in a larger allocation than a strip's."""
    try:
        png = _parse(data)
    except _Unsuited:
        return None
    # As Image.resize picks the integer reduction (the box is the whole image).
    factor = (
        int(png.width / size[0] / reducing_gap) or 1,
        int(png.height / size[1] / reducing_gap) or 1,
    )
    if factor == (1, 1) or resample == Image.Resampling.NEAREST:
        return None
    rows = max(1, STRIP_BYTES // png.stride // factor[1]) * factor[1]
    reduced: Image.Image | None = None
    premultiplied = ""
    info: dict[str | tuple[int, int], object] = {}
    try:
        for strip, first in _strips(png, rows):
            work = strip if convert is None else convert(strip)
            if reduced is None:
                if work.mode in ("1", "P"):
                    return None  # Pillow resizes these nearest, from the whole image
                info = dict(work.info)
                # Image.resize scales LA and RGBA premultiplied by their alpha.
                premultiplied = {"LA": "La", "RGBA": "RGBa"}.get(work.mode, "")
                mode = premultiplied or work.mode
                reduced = Image.new(mode, (-(-png.width // factor[0]), -(-png.height // factor[1])))
                top = 0
            if premultiplied:
                work = work.convert(premultiplied)
            part = work.reduce(factor, box=(0, first, png.width, work.height))
            reduced.paste(part, (0, top))
            top += part.height
    except _Unsuited:
        return None
    if reduced is None:
        return None
    box = (0.0, 0.0, png.width / factor[0], png.height / factor[1])
    out = reduced.resize(size, resample, box=box)
    if premultiplied:
        out = out.convert(premultiplied.replace("a", "A"))
    out.info.update(info)
    return out
