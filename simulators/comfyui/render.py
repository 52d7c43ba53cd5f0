"""The images the simulated sampler "renders": deterministic PNGs."""

from __future__ import annotations

import functools
import hashlib
import io
import random
import re

from PIL import Image, ImageDraw, ImageFont, ImageOps, ImageStat

# The text an image prompt asks to be printed on the design, the way prompts say it: quoted
# ('the text "STAY WILD" in bold letters'), straight or typographic quotes; each quote one line.
_QUOTED = re.compile(r"[\"\u201c\u201d]([^\"\u201c\u201d\n]{1,80})[\"\u201c\u201d]")
# Words by which a prompt asks for small lettering (the default is large, a design's headline).
_SMALL = re.compile(r"\b(small|tiny|little|fine print)\b", re.IGNORECASE)
# At most this many lines of printed text (a design's slogan, not a page).
MAX_LINES = 4


@functools.lru_cache(maxsize=64)
def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def printed_text(prompt: str) -> list[str]:
    """The lines of text ``prompt`` asks to be printed on the design (its quoted parts)."""
    lines = [" ".join(m.group(1).split()) for m in _QUOTED.finditer(prompt)]
    return [line for line in lines if line][:MAX_LINES]


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

    A rotated colour gradient and a few shapes drawn from a hash of prompt, seed and batch
    index, and the text the prompt asks to be printed (:func:`printed_text`) large, centred and
    legible over them, as text-capable models draw it. Takes ~20-40 ms at 1024x1024. Drawn at
    the sampler's size, then scaled to ``out_width`` x ``out_height`` (the upscale nodes'
    result).
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
    # No other words: a model prints only the text it is asked for, so OCR of these images
    # reads what the prompt asked to print, never the prompt itself.
    lines = printed_text(prompt)
    if lines:
        _draw_lines(img, lines, small=bool(_SMALL.search(prompt)), rng=rng)
    if (out_width or width, out_height or height) != (width, height):
        # Nearest: the cheapest scaling, and its repeated rows keep the PNG small.
        img = img.resize((out_width or width, out_height or height), Image.Resampling.NEAREST)
    buf = io.BytesIO()
    # Level 1: encoding dominates the cost and the bytes stay deterministic at any level.
    img.save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def _draw_lines(
    img: Image.Image,
    lines: list[str],
    *,
    small: bool,
    rng: random.Random,
) -> None:
    """``lines`` centred, each as large as the design allows, in bold letters whose fill
    contrasts with the background behind them (light on dark, dark on light) and a thin outline
    of the opposite shade, as a designer sets a slogan over art."""
    width, height = img.size
    short = min(width, height)
    # A headline's letters are ~1/8 of the design; "small" lettering ~1/25.
    share = rng.uniform(0.03, 0.045) if small else rng.uniform(0.09, 0.14)
    size = max(8, int(short * share))
    # Shrink until the widest line fits 90% of the width (a long slogan gets smaller letters).
    while size > 8 and max(_font(size).getlength(line) for line in lines) > width * 0.9:
        size = max(8, int(size * 0.9))
    font = _font(size)
    step = int(size * 1.25)
    # Centred across, in the middle band of the design down (where a print's headline sits).
    top = max(0, int(height * rng.uniform(0.35, 0.55)) - step * len(lines) // 2)
    behind = img.crop((0, top, width, min(height, top + step * len(lines)))).convert("L")
    light = ImageStat.Stat(behind).mean[0] < 128
    fill, outline = ((255, 255, 255), (0, 0, 0)) if light else ((0, 0, 0), (255, 255, 255))
    # Bold: the regular face thickened by a stroke of its own colour, inside a thinner outline.
    bold, rim = max(1, size // 24), max(1, size // 30)
    draw = ImageDraw.Draw(img)
    for i, line in enumerate(lines):
        xy = (width // 2, top + i * step)
        draw.text(xy, line, font=font, anchor="ma", fill=outline, stroke_width=bold + rim)
        draw.text(xy, line, font=font, anchor="ma", fill=fill, stroke_width=bold, stroke_fill=fill)
