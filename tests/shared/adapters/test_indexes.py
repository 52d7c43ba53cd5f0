"""No table carries the same index twice: two indexes on the same columns (in any direction),
with the same uniqueness, method and predicate, serve the same reads, and every write pays for
both (issue 30: jobs had two such pairs)."""

from __future__ import annotations

import re
from collections import defaultdict

import psycopg


def _shape(definition: str) -> str:
    """An index's definition without its name and its columns' directions."""
    shape = re.sub(r"INDEX \S+ ON", "INDEX ON", definition)
    return re.sub(r"\s+(ASC|DESC)(?=[,)])", "", shape)


def test_no_table_has_an_index_twice(migrated_db: str) -> None:
    with psycopg.connect(migrated_db) as conn:
        rows = conn.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema()"
        ).fetchall()
    by_shape: dict[str, list[str]] = defaultdict(list)
    for name, definition in rows:
        by_shape[_shape(definition)].append(name)
    twice = {shape: names for shape, names in by_shape.items() if len(names) > 1}
    assert not twice, twice


def test_the_shape_ignores_only_names_and_directions() -> None:
    a = "CREATE INDEX jobs_a ON public.jobs USING btree (created_at DESC, job_id)"
    b = "CREATE INDEX jobs_b ON public.jobs USING btree (created_at DESC, job_id DESC)"
    c = "CREATE UNIQUE INDEX jobs_c ON public.jobs USING btree (created_at DESC, job_id DESC)"
    assert _shape(a) == _shape(b) != _shape(c)
