"""``pod summaries rebuild``: the job summaries recounted from the rows."""

from __future__ import annotations

import psycopg
import pytest

from shared.tools.cli import EXIT_OK, EXIT_UNREACHABLE, main
from tests.shared.adapters.store.test_job_summaries import assert_exact


def test_rebuild_puts_drifted_summaries_right(
    migrated_db: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with psycopg.connect(migrated_db, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO jobs (job_id, theme, style, niche, product_types, image_count,"
            " expected_products, expected_publications) VALUES"
            " ('cli-summaries', 't', 's', 'n', ARRAY['mug'], 1, 1, 0)"
            " ON CONFLICT DO NOTHING"
        )
        conn.execute("SELECT pod_compact_job_summaries()")
        # Drift no trigger made (a hand edit): the rebuild must undo it.
        conn.execute("UPDATE job_status_counts SET jobs = jobs + 5 WHERE status = 'queued'")
        conn.execute("UPDATE job_hours SET jobs = jobs + 5")
    with pytest.raises(AssertionError):
        assert_exact(migrated_db)
    monkeypatch.setenv("DATABASE_URL", migrated_db)
    assert main(["summaries", "rebuild"]) == EXIT_OK
    assert "rebuilt" in capsys.readouterr().out
    assert_exact(migrated_db)


def test_an_unreachable_database_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://pod:secret-pw@127.0.0.1:1/pod")
    assert main(["summaries", "rebuild"]) == EXIT_UNREACHABLE
    err = capsys.readouterr().err
    assert "summaries not rebuilt" in err and "secret-pw" not in err
