"""The generator sizes its renders for the print areas of Printify's catalog, read at start."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from services.generator.handler import catalog_print_areas
from services.generator.settings import DEFAULT_PRINT_AREAS, GeneratorSettings
from shared.contract.events import ProductType
from shared.domain.printsize import PrintArea
from simulators.process import SimulatorProcess
from tests.support.infra import free_port


@pytest.fixture(scope="module")
def sim() -> Iterator[SimulatorProcess]:
    with SimulatorProcess("printify", free_port()) as proc:
        yield proc


def settings(**values: Any) -> GeneratorSettings:
    return GeneratorSettings(claude_api_key="k", **values)


async def test_areas_come_from_the_catalog_of_the_configured_blueprints(
    sim: SimulatorProcess, migrated_db: str
) -> None:
    # Tees made on the hoodie's blueprint: its front is what a tee's art must fill.
    s = settings(
        database_url=migrated_db,
        printify_api_key="tok-gen",
        printify_api_url=sim.url,
        product_catalog={"tshirt": {"blueprint_id": 77, "print_provider_id": 99, "price_cents": 1}},
    )
    areas = await catalog_print_areas(s)
    assert areas[ProductType.TSHIRT] == PrintArea(width=3852, height=3396)
    assert areas[ProductType.MUG] == PrintArea(width=2475, height=1155)
    sizing = s.print_sizing(areas)
    assert sizing.areas["tshirt"] == PrintArea(width=3852, height=3396)
    # An operator's PRINT_AREAS still has the last word.
    override = settings(print_areas={"tshirt": {"width": 100, "height": 100}})
    assert override.print_sizing(areas).areas["tshirt"] == PrintArea(width=100, height=100)


async def test_without_printify_or_when_it_is_unreachable_the_defaults_apply(
    migrated_db: str,
) -> None:
    assert await catalog_print_areas(settings()) == {}
    unreachable = settings(
        database_url=migrated_db,
        printify_api_key="tok",
        printify_api_url=f"http://127.0.0.1:{free_port()}",
    )
    assert await catalog_print_areas(unreachable) == {}
    sizing = unreachable.print_sizing({})
    assert sizing.areas == {t.value: a for t, a in DEFAULT_PRINT_AREAS.items()}
