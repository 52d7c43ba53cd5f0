"""A connection pool on the session's test database, for the monitor's fold tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from psycopg_pool import AsyncConnectionPool

from shared.platform.db import open_pool


@pytest.fixture
async def pool(migrated_db: str) -> AsyncIterator[AsyncConnectionPool]:
    p = await open_pool(migrated_db, max_size=4)
    yield p
    await p.close()
