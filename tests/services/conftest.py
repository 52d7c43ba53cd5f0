"""Fixtures for the service tests: simulators, and one whole stack shared by the e2e tests."""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest

from shared.stack import Stack, isolated_settings
from simulators.process import SimulatorProcess
from tests.support.infra import TEST_STATE, free_port, wait_for
from tests.support.pipeline import api_up, stack_env


@pytest.fixture(scope="module")
def printify_sim() -> Iterator[SimulatorProcess]:
    """A Printify simulator of its own for the module; each account has a custom-integration
    shop (the first) and an Etsy shop."""
    env = {"SIM_PRINTIFY_SHOPS": "custom_integration,etsy"}
    with SimulatorProcess("printify", free_port(), env=env) as sim:
        yield sim


@pytest.fixture(scope="session")
def stack() -> Iterator[Stack]:
    state = TEST_STATE / "e2e"
    shutil.rmtree(state, ignore_errors=True)
    settings = isolated_settings(state, kafka_partitions=3, restart_delay_s=1.0)
    env = {
        **stack_env(state, 256),
        "MAX_IN_FLIGHT": "8",
        "SIM_LATENCY_MS": "0",
        "SIM_FAILURE_RATE": "0",
        "ALERT_INTERVAL_S": "2",
        "WORKER_STALE_S": "6",
    }
    s = Stack(settings, extra_env=env).start()
    try:
        wait_for(lambda: api_up(s), 60, "the API to answer /health", interval=0.2)
        s.supervise_in_background(0.2)
        yield s
    finally:
        s.stop()
