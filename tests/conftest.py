"""Session fixtures: one real Kafka broker and one real PostgreSQL for the whole suite."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from confluent_kafka.admin import AdminClient

from shared.contract.topics import ensure_topics
from shared.platform.db import migrate
from tests.support import infra


@pytest.fixture(scope="session")
def test_state() -> None:
    """Start each session from an empty local broker and database (unless env-provided)."""
    if not (os.environ.get("KAFKA_BOOTSTRAP_SERVERS") and os.environ.get("DATABASE_URL")):
        infra.fresh_state()


@pytest.fixture(scope="session")
def kafka_bootstrap(test_state: None) -> Iterator[str]:
    """Bootstrap servers of the test broker (the env's cluster, or a local one)."""
    given = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if given:
        yield given
        return
    broker = infra.start_kafka()
    try:
        yield broker.bootstrap
    finally:
        broker.stop()


@pytest.fixture(scope="session")
def database_url(test_state: None) -> Iterator[str]:
    """URL of the test database (the env's, or an embedded server)."""
    given = os.environ.get("DATABASE_URL")
    if given:
        yield given
        return
    server = infra.start_postgres()
    try:
        # The harness's own access (the services' role is tested in tests/devstack).
        yield server.superuser_url
    finally:
        server.stop()


@pytest.fixture(scope="session")
def pipeline_topics(kafka_bootstrap: str) -> str:
    """The registry's topics exist on the test broker."""
    ensure_topics(AdminClient({"bootstrap.servers": kafka_bootstrap}), default_partitions=6)
    return kafka_bootstrap


@pytest.fixture(scope="session")
def migrated_db(database_url: str) -> str:
    """The test database with every migration applied."""
    migrate(database_url)
    return database_url


# Fixtures that start (or use) the session's broker and database.
_INFRA = {"kafka_bootstrap", "database_url"}

# Per-test timeouts (pytest-timeout, fixtures included) above pyproject's default of 300 s, for
# the kinds that start a whole stack: about three times the slowest run seen in CI (chaos 138 s
# plus its stack's start; hostile e2e 85 s, stack e2e 53 s), so only a hang reaches them.
_TIMEOUTS = {"chaos": 900, "e2e": 600}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark each test by what it needs: ``chaos`` (kills and restarts whole stacks), ``e2e``
    (a whole stack of processes), ``integration`` (the real broker or database), else ``unit``
    (`make test-unit`: no broker, no database, no stack)."""
    for item in items:
        kind = _kind(item)
        item.add_marker(kind)
        # A test's own timeout marker, if any, stays the closest.
        if kind.name in _TIMEOUTS and item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(_TIMEOUTS[kind.name]))


def _kind(item: pytest.Item) -> pytest.MarkDecorator:
    name = item.path.name
    fixtures = set(getattr(item, "fixturenames", ()))
    if "chaos" in name:
        return pytest.mark.chaos
    if name.endswith("_e2e.py") or "stack" in fixtures or name == "test_event_fuzz.py":
        return pytest.mark.e2e
    if fixtures & _INFRA or item.get_closest_marker("integration"):
        return pytest.mark.integration
    return pytest.mark.unit
