"""Simulator fixtures for the stage handler tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from simulators.process import SimulatorProcess
from tests.support.infra import free_port


@pytest.fixture(scope="module")
def printify_sim() -> Iterator[SimulatorProcess]:
    """A Printify simulator of its own for the module."""
    with SimulatorProcess("printify", free_port()) as sim:
        yield sim
