"""Migration 0027 on rows written before it: the band keeps its value under its own name, a row
without a stored request gets one from its columns (the payload's shape, readable by today's
contract), and a product's lowest price moves to PriceSummary's name."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest
from psycopg.conninfo import make_conninfo

from shared.contract.events import JobRequestedPayload
from shared.platform.db import migrate, migrations

_RECORD = "INSERT INTO schema_migrations (version, name) VALUES (%s, %s)"


@pytest.fixture
def before_0027(database_url: str) -> Iterator[str]:
    """A database of its own, migrated up to 0026 (as a deployment stood before this one)."""
    name = f"pod_spec_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(database_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = make_conninfo(database_url, dbname=name)
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(
                "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL,"
                " applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
            )
            for version, file, sql in migrations():
                if version < 27:
                    with conn.transaction():
                        conn.execute(sql.encode())
                        conn.execute(_RECORD, (version, file))
        yield url
    finally:
        with psycopg.connect(database_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_rows_from_before_read_by_their_new_names(before_0027: str) -> None:
    with psycopg.connect(before_0027, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO jobs (job_id, priority, priority_level, theme, style, niche,"
            " product_types, image_count, auto_publish, channels, expected_products,"
            " expected_publications, submitted_by)"
            " VALUES ('by-hand', 'high', 8, 'cats', 'flat', 'pets', ARRAY['mug'], 2, TRUE,"
            " ARRAY['etsy'], 2, 2, 'label-1')"
        )
        conn.execute(
            "INSERT INTO jobs (job_id, priority, theme, style, niche, product_types,"
            " image_count, expected_products, expected_publications, request)"
            " VALUES ('kept', 'low', 't', 's', 'n', ARRAY['tshirt'], 1, 1, 0,"
            ' \'{"theme": "as stored"}\')'
        )
        conn.execute(
            "INSERT INTO products (job_id, image_index, product_type, status, price_cents,"
            " price_max_cents, created_at) VALUES ('by-hand', 0, 'mug', 'created', 1499, 1999,"
            " now())"
        )

    assert migrate(before_0027) == ["0027_job_spec.sql"]

    with psycopg.connect(before_0027) as conn:
        bands: dict[str, str] = dict(conn.execute("SELECT job_id, band FROM jobs").fetchall())
        assert bands == {"by-hand": "high", "kept": "low"}
        stored = conn.execute("SELECT request FROM jobs WHERE job_id = 'by-hand'").fetchone()
        kept = conn.execute("SELECT request FROM jobs WHERE job_id = 'kept'").fetchone()
        prices = conn.execute("SELECT price_min_cents, price_max_cents FROM products").fetchone()
    assert stored is not None and kept is not None
    # The backfilled request is the job.requested payload the row was made of.
    assert JobRequestedPayload.model_validate(stored[0]) == JobRequestedPayload(
        theme="cats", style="flat", niche="pets", product_types=["mug"], count=2,
        auto_publish=True, channels=["etsy"], priority="high", priority_level=8,
        submitted_by="label-1",
    )  # fmt: skip
    assert kept[0] == {"theme": "as stored"}  # a stored request is never rewritten
    assert prices == (1499, 1999)
