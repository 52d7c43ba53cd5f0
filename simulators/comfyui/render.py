"""The images the simulated sampler "renders": deterministic PNGs."""

from __future__ import annotations

import functools
import hashlib
import io
import random

from PIL import Image, ImageDraw, ImageFont, ImageOps


@functools.lru_cache(maxsize=32)
def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def render_png(
    prompt: str,
    seed: int,
    width: int,
    height: int,
    index: int = 0,
    out_width: int | None = None,
    out_height: int | None = None,
) -> bytes:
    """A PNG that is a pure function of its arguments (same inputs → identical bytes).

    A rotated colour gradient, a few shapes and the first words of the prompt, all drawn from
    a hash of prompt, seed and batch index. Takes ~20-40 ms at 1024x1024. Drawn at the
    sampler's size, then scaled to ``out_width`` x ``out_height`` (the upscale nodes' result).
    """
    digest = hashlib.sha256(f"{seed}\x00{index}\x00{prompt}".encode()).digest()
    rng = random.Random(digest)

    def colour() -> tuple[int, int, int]:
        return (rng.randrange(256), rng.randrange(256), rng.randrange(256))

    # Rotate the small 256x256 gradient and crop its centre (no empty corners), then scale up:
    # far cheaper than drawing a gradient at full size.
    grad = Image.linear_gradient("L").rotate(rng.uniform(0, 360), Image.Resampling.BILINEAR)
    grad = grad.crop((64, 64, 192, 192)).resize((width, height), Image.Resampling.BILINEAR)
    img = ImageOps.colorize(grad, colour(), colour(), colour())
    draw = ImageDraw.Draw(img)
    short = min(width, height)
    for _ in range(rng.randint(4, 8)):
        x, y = rng.randrange(width), rng.randrange(height)
        r = rng.randint(max(1, short // 20), max(2, short // 5))
        box = (x - r, y - r, x + r, y + r)
        draw_shape = draw.ellipse if rng.random() < 0.5 else draw.rectangle
        draw_shape(box, fill=colour(), outline=colour(), width=max(1, r // 10))
    words = " ".join(prompt.split()[:6]) or "(empty prompt)"
    size = max(8, short // 16)
    draw.text(
        (short // 20, max(0, height - size * 2)),
        words,
        font=_font(size),
        fill=(255, 255, 255),
        stroke_width=max(1, size // 12),
        stroke_fill=(0, 0, 0),
    )
    if (out_width or width, out_height or height) != (width, height):
        # Nearest: the cheapest scaling, and its repeated rows keep the PNG small.
        img = img.resize((out_width or width, out_height or height), Image.Resampling.NEAREST)
    buf = io.BytesIO()
    # Level 1: encoding dominates the cost and the bytes stay deterministic at any level.
    img.save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


# --------------------------------------------------------------------------- validation
