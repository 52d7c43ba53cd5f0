"""Print sizes: how many pixels art needs for a print area, and where it goes on it.

Printify describes a print area by its placeholder's size in pixels at 300 DPI (a tee front is
4500 x 5100: 15 x 17 inches). Art is placed by its centre (``x``, ``y`` as fractions of the
area) and ``scale``, the art's width as a fraction of the area's width. Art that is 1024 px wide
spread over a tee front prints at 1024 / 15 in = 68 DPI: visibly blurry. These helpers size the
render for a resolution and place it so that it fits inside the area (contain), whatever the
area's shape: portrait on a tee, a wide strip on a wrap-around mug.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from pydantic import BaseModel, Field

PLACEHOLDER_DPI = 300  # Printify's placeholders are sized at this resolution


class PrintArea(BaseModel):
    """One placeholder: its size in pixels at :data:`PLACEHOLDER_DPI`."""

    width: int = Field(ge=1)
    height: int = Field(ge=1)


class Placement(BaseModel):
    """Where art goes on one print area, and the resolution it prints at there."""

    x: float = 0.5
    y: float = 0.5
    scale: float
    dpi: float


def place(art_width: int, art_height: int, area: PrintArea) -> Placement:
    """Centre the art as large as it fits inside ``area`` (never cropped)."""
    if art_width < 1 or art_height < 1:
        raise ValueError(f"art size must be positive, got {art_width}x{art_height}")
    # The widest the art may be: the area's width, or as wide as its height allows.
    shown = min(area.width, area.height * art_width / art_height)
    # Rounded down: a hair smaller, never a hair over the edge.
    scale = math.floor(shown / area.width * 1e6) / 1e6
    return Placement(scale=scale, dpi=round(PLACEHOLDER_DPI * art_width / shown, 1))


def required_size(
    art_width: int, art_height: int, areas: Iterable[PrintArea], dpi: float
) -> tuple[int, int]:
    """The least size, of the art's shape, that prints at ``dpi`` on every one of ``areas``
    (placed by :func:`place`); at least the art's own size."""
    aspect = art_width / art_height
    width = float(art_width)
    for area in areas:
        shown = min(area.width, area.height * aspect)
        width = max(width, shown * dpi / PLACEHOLDER_DPI)
    w = math.ceil(width)
    return w, max(1, math.ceil(w / aspect))


class PrintSizing(BaseModel):
    """The size the generator renders to for a job's product types: each type's print area at
    ``dpi``, but no more than ``max_upscale`` times the sampled size (beyond it an upscale
    model invents detail) nor ``max_pixels`` a side."""

    areas: dict[str, PrintArea] = Field(default_factory=dict)
    dpi: float = Field(default=300, gt=0, le=1200)
    max_upscale: float = Field(default=4.0, ge=1, le=64)
    max_pixels: int = Field(default=8192, ge=64)

    def output_size(self, width: int, height: int, product_types: Iterable[str]) -> tuple[int, int]:
        """The render's final size for art sampled at ``width`` x ``height``."""
        areas = [self.areas[t] for t in product_types if t in self.areas]
        needed, _ = required_size(width, height, areas, self.dpi)
        factor = min(needed / width, self.max_upscale, self.max_pixels / max(width, height))
        factor = max(factor, 1.0)
        return math.ceil(width * factor), math.ceil(height * factor)
