"""A database of its own, migrated up to a given version: a deployment as it stood before a
migration, for that migration's test."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import psycopg
import pytest
from psycopg.conninfo import make_conninfo

from shared.platform.db import migrations

_RECORD = "INSERT INTO schema_migrations (version, name) VALUES (%s, %s)"

DatabaseBefore = Callable[[int], str]


@pytest.fixture
def database_before(database_url: str) -> Iterator[DatabaseBefore]:
    """``database_before(n)``: the URL of a new database with every migration before ``n``
    applied (and recorded); dropped after the test."""
    made: list[str] = []

    def make(version: int) -> str:
        name = f"pod_before_{version}_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(database_url, autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
        made.append(name)
        url = make_conninfo(database_url, dbname=name)
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(
                "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL,"
                " applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
            )
            for number, file, sql in migrations():
                if number < version:
                    with conn.transaction():
                        conn.execute(sql.encode())
                        conn.execute(_RECORD, (number, file))
        return url

    yield make
    with psycopg.connect(database_url, autocommit=True) as admin:
        for name in made:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
