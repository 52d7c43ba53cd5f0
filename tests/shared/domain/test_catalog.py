"""The product catalog: print areas read from Printify's catalog (the simulator's, over HTTP)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from shared.adapters.vendors.printify import CatalogVariant, PrintifyClient
from shared.contract.events import ProductType
from shared.domain.catalog import DEFAULT_CATALOG, CatalogEntry, print_area, read_print_areas
from shared.domain.printsize import PrintArea
from simulators.process import SimulatorProcess
from tests.support.infra import free_port


@pytest.fixture(scope="module")
def sim() -> Iterator[SimulatorProcess]:
    with SimulatorProcess("printify", free_port()) as proc:
        yield proc


@pytest.fixture
async def client(sim: SimulatorProcess) -> AsyncIterator[PrintifyClient]:
    c = PrintifyClient(api_key="tok-catalog", base_url=sim.url)
    yield c
    await c.aclose()


def variant(vid: int, *placeholders: tuple[str, int, int]) -> CatalogVariant:
    return CatalogVariant.model_validate(
        {
            "id": vid,
            "placeholders": [{"position": p, "width": w, "height": h} for p, w, h in placeholders],
        }
    )


def test_the_area_covers_every_placeholder_at_the_positions_printed() -> None:
    variants = [
        variant(1, ("front", 4000, 4800), ("back", 9000, 9000)),
        variant(2, ("front", 4500, 4200)),
        variant(3, ("front", 0, 0)),  # a broken entry is no area
    ]
    assert print_area(variants, ["front"]) == PrintArea(width=4500, height=4800)
    assert print_area(variants, ["front", "back"]) == PrintArea(width=9000, height=9000)
    assert print_area(variants, ["sleeve"]) is None
    assert print_area([], ["front"]) is None


async def test_print_areas_are_the_catalogs(client: PrintifyClient) -> None:
    areas = await read_print_areas(client, DEFAULT_CATALOG)
    assert areas == {
        ProductType.TSHIRT: PrintArea(width=4500, height=5100),
        ProductType.HOODIE: PrintArea(width=3852, height=3396),
        ProductType.MUG: PrintArea(width=2475, height=1155),
    }
    # Another blueprint, or more positions, is another area: read, not assumed.
    other = {
        ProductType.TSHIRT: CatalogEntry(blueprint_id=77, print_provider_id=99, price_cents=1),
        ProductType.HOODIE: CatalogEntry(
            blueprint_id=77, print_provider_id=99, price_cents=1, positions=("front", "back")
        ),
        ProductType.MUG: CatalogEntry(
            blueprint_id=68, print_provider_id=1, price_cents=1, positions=("sleeve",)
        ),
    }
    assert await read_print_areas(client, other) == {
        ProductType.TSHIRT: PrintArea(width=3852, height=3396),
        ProductType.HOODIE: PrintArea(width=4500, height=5100),
    }
