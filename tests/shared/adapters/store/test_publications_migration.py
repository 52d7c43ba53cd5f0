"""Migration 0028 on a publication recorded before it: a pending Printify publication keeps
being watched by the printify channel's publisher, and another channel may now watch the same
product beside it."""

from __future__ import annotations

import psycopg

from shared.platform.db import migrate
from tests.shared.adapters.store.conftest import DatabaseBefore

_ROW = (
    "INSERT INTO publications (job_id, image_index, product_type, product_id, shop_id,"
    " sales_channel, event, confirm_by, next_check_at{extra})"
    " VALUES ('j1', 0, 'mug', 'p1', 's1', %s, '{{}}', now() + interval '1 hour', now(){values})"
)


def test_a_pending_publication_from_before_stays_the_printify_channels(
    database_before: DatabaseBefore,
) -> None:
    url = database_before(28)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(_ROW.format(extra="", values=""), ("etsy",))

    assert migrate(url)[0] == "0028_direct_publications.sql"

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            _ROW.format(extra=", channel, pending_ref", values=", 'meta', 'handle-1'"), ("meta",)
        )
        rows = conn.execute(
            "SELECT channel, sales_channel, pending_ref FROM publications ORDER BY channel"
        ).fetchall()
    assert rows == [("meta", "meta", "handle-1"), ("printify", "etsy", None)]
