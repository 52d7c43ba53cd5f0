"""Migration 0027 on rows written before it: the band keeps its value under its own name, a row
without a stored request gets one from its columns (the payload's shape, readable by today's
contract), and a product's lowest price moves to PriceSummary's name."""

from __future__ import annotations

import psycopg
import pytest

from shared.contract.events import JobRequestedPayload
from shared.platform.db import migrate
from tests.shared.adapters.store.conftest import DatabaseBefore


@pytest.fixture
def before_0027(database_before: DatabaseBefore) -> str:
    """A database migrated up to 0026 (as a deployment stood before this one)."""
    return database_before(27)


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

    assert migrate(before_0027)[0] == "0027_job_spec.sql"

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
