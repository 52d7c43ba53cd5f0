"""A print-size PNG scaled down a strip at a time (``shared.platform.images``): Pillow's own
pixels, at a strip's memory."""

from __future__ import annotations

import functools
import io
import subprocess
import sys
import textwrap
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, ImageDraw

from shared.platform import images
from shared.platform.images import resized_png, thumbnail_size


@functools.lru_cache(maxsize=8)
def _art(mode: str, width: int, height: int, compress_level: int = 6) -> bytes:
    """A design-like PNG: gradient, shapes, noise (every filter type gets used), in ``mode``."""
    grey = Image.linear_gradient("L").resize((width, height))
    img = Image.merge("RGB", (grey, grey.rotate(90), Image.effect_noise((width, height), 60)))
    draw = ImageDraw.Draw(img)
    for i in range(12):
        x, y, r = (i * 7919) % width, (i * 104729) % height, width // (3 + i)
        draw.ellipse((x - r, y - r, x + r, y + r), fill=(i * 20, 255 - i * 20, i * 9))
    alpha = Image.radial_gradient("L").resize((width, height))
    if mode == "RGBA":
        img.putalpha(alpha)
    elif mode == "LA":
        img = img.convert("L").convert("LA")
        img.putalpha(alpha)
    elif mode == "P":
        img = img.quantize(64)
    else:
        img = img.convert(mode)
    out = io.BytesIO()
    img.save(out, format="PNG", compress_level=compress_level)
    return out.getvalue()


def _resaved(data: bytes, **save: Any) -> bytes:
    with Image.open(io.BytesIO(data)) as img:
        out = io.BytesIO()
        img.save(out, format="PNG", **save)
        return out.getvalue()


def _pillows(data: bytes, size: tuple[int, int], resample: Image.Resampling, convert: Any) -> Any:
    with Image.open(io.BytesIO(data)) as img:
        img.load()
        work = img if convert is None else convert(img)
        return work.resize(size, resample, reducing_gap=2.0)


def _flat_on_black(img: Image.Image) -> Image.Image:
    rgba = img.convert("RGBA")
    flat = Image.new("RGB", rgba.size)
    flat.paste(rgba, mask=rgba.getchannel("A"))
    return flat


_CONVERTS: dict[str, Callable[[Image.Image], Image.Image] | None] = {
    "none": None,
    "grey": lambda img: img.convert("L"),
    "flat": _flat_on_black,
}


@pytest.mark.parametrize(
    ("mode", "width", "height"),
    [("RGB", 2400, 2400), ("RGB", 2250, 2701), ("RGBA", 3001, 2003), ("L", 2000, 1777),
     ("LA", 1999, 2500), ("P", 2100, 1500)],
)  # fmt: skip
@pytest.mark.parametrize(
    ("most", "resample", "convert"),
    [((256, 256), Image.Resampling.BOX, "none"), ((320, 320), Image.Resampling.BILINEAR, "flat"),
     ((500, 500), Image.Resampling.BOX, "grey")],
)  # fmt: skip
def test_the_strips_give_pillows_own_pixels(
    monkeypatch: pytest.MonkeyPatch,
    mode: str,
    width: int,
    height: int,
    most: tuple[int, int],
    resample: Image.Resampling,
    convert: str,
) -> None:
    # Small strips (a few rows, not a multiple of every factor's blocks) so that every image
    # here crosses many strip boundaries.
    monkeypatch.setattr(images, "STRIP_BYTES", 37_000)
    data = _art(mode, width, height, compress_level=6)
    size = thumbnail_size(width, height, most)
    assert size is not None
    got = resized_png(data, size, resample, convert=_CONVERTS[convert])
    want = _pillows(data, size, resample, _CONVERTS[convert])
    if mode == "P" and convert == "none":
        assert got is None  # Pillow scales a palette image nearest, from the whole image
        return
    assert got is not None
    assert (got.mode, got.size) == (want.mode, want.size)
    assert got.tobytes() == want.tobytes()


def test_thumbnail_size_is_pillows() -> None:
    for width, height in [(4096, 4096), (4500, 5400), (5400, 4500), (3001, 2003), (7, 9000)]:
        img = Image.new("L", (width, height))
        img.thumbnail((320, 320))
        assert thumbnail_size(width, height, (320, 320)) == img.size
    assert thumbnail_size(300, 200, (320, 320)) is None


def _with_chunk(data: bytes, kind: bytes, body: bytes) -> bytes:
    """``data`` with a chunk inserted after IHDR."""
    at = 8 + 8 + 13 + 4
    crc = zlib.crc32(body, zlib.crc32(kind)).to_bytes(4, "big")
    return data[:at] + len(body).to_bytes(4, "big") + kind + body + crc + data[at:]


def test_what_it_cannot_scale_so_is_left_to_a_whole_decode() -> None:
    png = _art("RGB", 1200, 1200)
    size = (300, 300)
    box = Image.Resampling.BOX
    assert resized_png(png, size, box) is not None
    exif = Image.Exif()
    exif[0x0112] = 6  # rotated: the hash turns it upright, from the whole image
    unsuited = {
        "jpeg": _jpeg(),
        "not an image": b"\x89PNG\r\n\x1a\n" + b"x" * 100,
        "16-bit": _sixteen_bit(),
        "EXIF": _resaved(png, exif=exif),
        "XMP": _with_chunk(png, b"iTXt", b"XML:com.adobe.xmp\x00\x00\x00\x00\x00<x/>"),
        "truncated": png[: len(png) // 2],
        "bad header checksum": png[:29] + bytes(b ^ 1 for b in png[29:33]) + png[33:],
        "small": _art("RGB", 500, 500),
        "nearest": None,
    }
    for name, data in unsuited.items():
        if data is None:
            assert resized_png(png, size, Image.Resampling.NEAREST) is None, name
        else:
            assert resized_png(data, size, box) is None, name
    # Text chunks (ComfyUI writes its prompt and workflow in them) do not stand in the way.
    assert resized_png(_with_chunk(png, b"tEXt", b"prompt\x00{}"), size, box) is not None


def _jpeg() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (1200, 1200), "red").save(out, format="JPEG")
    return out.getvalue()


def _sixteen_bit() -> bytes:
    out = io.BytesIO()
    Image.new("I;16", (1200, 1200), 300).save(out, format="PNG")
    return out.getvalue()


def test_corrupt_pixels_fail_as_pillow_fails_them_without_a_large_allocation() -> None:
    # A valid header over pixels that inflate to less than it says: refused (None), so the
    # caller's whole decode reports it in its own words.
    png = _art("RGB", 1200, 1200)
    header = png[:33]
    pixels = zlib.compress(b"\x00" * 1000)
    idat = (
        len(pixels).to_bytes(4, "big")
        + b"IDAT"
        + pixels
        + zlib.crc32(pixels, zlib.crc32(b"IDAT")).to_bytes(4, "big")
    )
    iend = b"\x00\x00\x00\x00IEND\xaeB`\x82"
    assert resized_png(header + idat + iend, (300, 300), Image.Resampling.BOX) is None


# The three checks of one 4096 px design, each alone, in a fresh process: the peak resident
# set over them (VmHWM, reset first: proc(5) clear_refs) above the resident set before.
_PEAK_PROBE = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from shared.adapters.ocr import prepare
    from shared.adapters.unsafe import decode_scaled
    from shared.domain.screening.phash import design_hashes
    from shared.platform.memory import settle_after_startup

    def status(key):
        for line in open("/proc/self/status"):
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024

    small, large = (Path(p).read_bytes() for p in sys.argv[1:3])
    settle_after_startup()
    for check in (design_hashes, prepare):  # imports (scipy) and first-use caches
        check(small)
    decode_scaled(small, max_pixels=8192 * 8192, side=320)
    before = status("VmRSS")
    open("/proc/self/clear_refs", "w").write("5")
    design_hashes(large)
    prepare(large)
    decode_scaled(large, max_pixels=8192 * 8192, side=320)
    print(status("VmHWM") - before)
    """
)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc/self")
def test_screening_a_print_size_design_holds_a_few_megabytes_not_its_pixels(
    tmp_path: Path,
) -> None:
    from simulators.comfyui.render import render_png

    # The generator's default art (a 1024 px sample upscaled x4): 64 MB of pixels decoded
    # whole, as Pillow holds RGB; each check held them (and its copies): +66 to +83 MB.
    (tmp_path / "small.png").write_bytes(render_png('"STAY WILD"', 3, 512, 512, 0, 1024, 1024))
    (tmp_path / "large.png").write_bytes(render_png('"STAY WILD"', 3, 1024, 1024, 0, 4096, 4096))
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            _PEAK_PROBE,
            str(tmp_path / "small.png"),
            str(tmp_path / "large.png"),
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    rise = float(out.stdout)
    # Measured: +8 to +22 MB; a whole decode is 64 MB by itself.
    assert rise < 40, f"screening one 4096 px design raised the peak RSS by {rise:.0f} MB"
