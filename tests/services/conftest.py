"""Fixtures for the service tests: simulators, and one whole stack shared by the e2e tests."""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import AsyncIterator, Iterator

import pytest
from psycopg_pool import AsyncConnectionPool

from devstack.stack import Stack, isolated_settings
from shared.domain.ledger import Ledger
from shared.platform.db import open_pool
from simulators.printify import SHOP_ID
from simulators.process import SimulatorProcess
from tests.support.infra import TEST_STATE, free_port, wait_for
from tests.support.pipeline import api_up, stack_env


@pytest.fixture
async def ledger(migrated_db: str) -> AsyncIterator[Ledger]:
    """The side-effect ledger on the test database (its own small pool)."""
    pool: AsyncConnectionPool = await open_pool(migrated_db, max_size=4)
    yield Ledger(pool)
    await pool.close()


# The second shop of every simulated account when SIM_PRINTIFY_SHOPS names two channels.
ETSY_SHOP_ID = SHOP_ID + 1


@pytest.fixture(scope="module")
def printify_sim() -> Iterator[SimulatorProcess]:
    """A Printify simulator of its own for the module; each account has a custom-integration
    shop (the first) and an Etsy shop, which lists a published product 0.2 s later."""
    env = {"SIM_PRINTIFY_SHOPS": "custom_integration,etsy", "SIM_PRINTIFY_PUBLISH_MS": "200"}
    with SimulatorProcess("printify", free_port(), env=env) as sim:
        yield sim


@contextlib.contextmanager
def e2e_stack(
    name: str, *, env: dict[str, str] | None = None, **overrides: object
) -> Iterator[Stack]:
    """A whole stack (broker, PostgreSQL, simulators, pool manager, API) in its own state
    folder and ports, as the e2e tests run it; ``env`` and ``overrides`` (StackSettings) on
    top."""
    state = TEST_STATE / name
    shutil.rmtree(state, ignore_errors=True)
    settings = isolated_settings(
        state, **{"kafka_partitions": 3, "restart_delay_s": 1.0, **overrides}
    )
    env = {
        **stack_env(state, 256),
        "MAX_IN_FLIGHT": "8",
        "SIM_LATENCY_MS": "0",
        "SIM_FAILURE_RATE": "0",
        "ALERT_INTERVAL_S": "2",
        "WORKER_STALE_S": "6",
        # Products go to an Etsy shop, which confirms each publication on its own, later.
        "SIM_PRINTIFY_SHOPS": "custom_integration,etsy",
        "PRINTIFY_SHOP_ID": str(ETSY_SHOP_ID),
        # ... which the deployment says it expects (pod doctor checks the shop's channel).
        "PRINTIFY_SALES_CHANNEL": "etsy",
        "SIM_PRINTIFY_PUBLISH_MS": "300",
        "PUBLISH_CHECK_MIN_S": "0.2",
        **(env or {}),
    }
    s = Stack(settings, extra_env=env).start()
    try:
        wait_for(lambda: api_up(s), 60, "the API to answer /health", interval=0.2)
        s.supervise_in_background(0.2)
        yield s
    finally:
        s.stop()


@pytest.fixture(scope="session")
def stack() -> Iterator[Stack]:
    """The stack the e2e tests share. Tests that break things (stop the broker, kill or pause
    workers, fault the simulators) use their own (:func:`e2e_stack`)."""
    with e2e_stack("e2e") as s:
        yield s
