"""Fixtures of the publisher tests: a Printify client of the module's simulator."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from shared.adapters.vendors.printify import PrintifyClient
from simulators.process import SimulatorProcess
from tests.services.publisher.support import TOKEN


@pytest.fixture
async def client(printify_sim: SimulatorProcess) -> AsyncIterator[PrintifyClient]:
    c = PrintifyClient(api_key=TOKEN, base_url=printify_sim.url)
    yield c
    await c.aclose()
