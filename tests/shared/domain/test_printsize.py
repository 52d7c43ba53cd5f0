"""Sizing art for print areas, and placing it so that it fits."""

from __future__ import annotations

import pytest

from shared.domain.printsize import PrintArea, PrintSizing, place, required_size

TEE = PrintArea(width=4500, height=5100)
MUG = PrintArea(width=2475, height=1155)


def test_square_art_on_a_tee_spans_its_width() -> None:
    placement = place(1024, 1024, TEE)
    assert (placement.x, placement.y, placement.scale) == (0.5, 0.5, 1.0)
    assert placement.dpi == pytest.approx(68.3, abs=0.1)  # the blurry default
    assert place(4500, 4500, TEE).dpi == 300


def test_square_art_on_a_wrap_around_mug_fits_its_height() -> None:
    placement = place(1155, 1155, MUG)
    assert placement.scale == pytest.approx(1155 / 2475, abs=1e-6)
    assert placement.dpi == 300
    # Shown 1155 px wide on the mug's 2475: inside, not cropped top and bottom.
    assert placement.scale * MUG.width <= MUG.height + 1e-6


@pytest.mark.parametrize("dpi", [150, 300])
def test_the_required_size_prints_at_the_dpi_on_every_area(dpi: int) -> None:
    width, height = required_size(1024, 1024, [TEE, MUG], dpi)
    assert width == height
    assert min(place(width, height, area).dpi for area in (TEE, MUG)) >= dpi
    smaller = width - 1
    assert place(smaller, smaller, TEE).dpi < dpi  # and no larger than needed
    assert required_size(1024, 1024, [], dpi) == (1024, 1024)
    assert required_size(1024, 768, [TEE], 150) == (2250, 1688)


def test_the_render_size_for_a_job_is_capped_by_the_upscale() -> None:
    sizing = PrintSizing(areas={"tshirt": TEE, "mug": MUG}, dpi=300, max_upscale=4)
    assert sizing.output_size(1024, 1024, ["mug"]) == (1155, 1155)
    assert sizing.output_size(1024, 1024, ["tshirt", "mug"]) == (4096, 4096)  # 273 DPI
    assert sizing.output_size(1024, 1024, ["poster"]) == (1024, 1024)  # no area known
    assert PrintSizing(areas={"tshirt": TEE}, dpi=150).output_size(1024, 1024, ["tshirt"]) == (
        2250,
        2250,
    )
    assert PrintSizing(areas={"tshirt": TEE}, max_pixels=2048).output_size(
        1024, 1024, ["tshirt"]
    ) == (2048, 2048)
