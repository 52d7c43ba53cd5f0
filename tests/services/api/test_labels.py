"""Callers are named by a label no one can test a guessed key against nor link to the same key
in another deployment; labels older versions stored (an unsalted digest) are replaced at start,
a configured key's by its new label (its old jobs and idempotency keys stay its own)."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterator

import psycopg
import pytest
from psycopg.types.json import Jsonb

from services.api.auth import label_of, legacy_label
from services.api.labels import legacy_replacement
from services.api.schemas.jobs import JobRequest
from services.api.submit import request_hash
from shared.contract.events import Priority
from shared.contract.topics import JOBS_REQUESTED
from tests.services.api.conftest import API_KEY, OTHER_KEY, serve
from tests.services.api.test_api import job_body, one_event
from tests.services.api.test_roles import bearer
from tests.support.infra import migrated_database


def _secret(url: str) -> bytes:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT secret FROM api_label_secret").fetchone()
    assert row is not None
    return str(row[0]).encode()


@pytest.fixture
def other_deployment(database_url: str) -> Iterator[str]:
    """A second deployment's database (migrated: a label secret of its own)."""
    with migrated_database(database_url, "pod_labels") as url:
        yield url


def _submitted_by(url: str, job_id: str) -> str:
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT submitted_by, request->>'submitted_by' FROM jobs WHERE job_id = %s", (job_id,)
        ).fetchone()
    assert row is not None and row[0] == row[1], row
    return str(row[0])


def test_submitted_by_is_a_deployment_label_not_a_digest_of_the_key(
    pipeline_topics: str, migrated_db: str, other_deployment: str
) -> None:
    labels = {}
    for url in (migrated_db, other_deployment):
        with serve(
            kafka_bootstrap_servers=pipeline_topics, database_url=url, api_keys=API_KEY
        ) as api:
            job_id = api.post("/jobs", json=job_body(), headers=bearer(API_KEY)).json()["jobId"]
        event = one_event(pipeline_topics, JOBS_REQUESTED[Priority.HIGH], job_id)
        stored = _submitted_by(url, job_id)
        assert event.payload.submitted_by == stored == label_of(API_KEY, _secret(url))
        labels[url] = stored
    digest = hashlib.sha256(API_KEY.encode()).hexdigest()
    for label in labels.values():
        assert label.startswith("caller-") and label != legacy_label(API_KEY)
        assert label[len("caller-") :] not in digest  # no part of the key's plain digest
    # The same key in two deployments: two unrelated names.
    assert labels[migrated_db] != labels[other_deployment]


def test_legacy_labels_are_replaced_at_start_and_keep_their_callers_jobs(
    pipeline_topics: str, migrated_db: str
) -> None:
    mine, gone = f"legacy-{uuid.uuid4()}", f"legacy-{uuid.uuid4()}"
    old_mine, old_gone = legacy_label(API_KEY), legacy_label(f"retired-{uuid.uuid4()}")
    body = job_body()
    idem = f"idem-{uuid.uuid4().hex[:8]}"
    with psycopg.connect(migrated_db, autocommit=True) as conn:
        for job_id, old in ((mine, old_mine), (gone, old_gone)):
            conn.execute(
                "INSERT INTO jobs (job_id, theme, style, niche, product_types, image_count,"
                " expected_products, expected_publications, submitted_by, request, created_at)"
                " VALUES (%s, 't', 's', 'n', ARRAY['tshirt'], 1, 1, 0, %s, %s, now())",
                (job_id, old, Jsonb({"theme": "t", "submitted_by": old})),
            )
            conn.execute(
                "INSERT INTO job_events (event_id, job_id, type, message, producer, data,"
                " occurred_at) VALUES (%s, %s, 'job.requested', 'm', 'api', %s, now())",
                (uuid.uuid4(), job_id, Jsonb({"submitted_by": old, "theme": "t"})),
            )
        # The configured key's keyed submission, under its old label in the ledger.
        conn.execute(
            "INSERT INTO api_idempotency (key, request_hash, job_id, produced)"
            " VALUES (%s, %s, %s, TRUE)",
            (f"{old_mine}:{idem}", request_hash(JobRequest.model_validate(body)), mine),
        )

    with serve(
        kafka_bootstrap_servers=pipeline_topics,
        database_url=migrated_db,
        api_keys=f"{API_KEY},{OTHER_KEY}",
    ) as api:
        secret = _secret(migrated_db)
        assert _submitted_by(migrated_db, mine) == label_of(API_KEY, secret)
        assert _submitted_by(migrated_db, gone) == legacy_replacement(old_gone, secret)
        # What the API shows of these jobs carries no old digest any more.
        for job_id in (mine, gone):
            shown = api.get(f"/jobs/{job_id}", headers=bearer(API_KEY))
            assert shown.status_code == 200, shown.text
            text = json.dumps(shown.json())
            assert "caller-" in text and old_mine not in text and old_gone not in text
        # The caller's retry after the upgrade is still the same job; another key's is not.
        again = api.post("/jobs", json=body, headers={**bearer(API_KEY), "Idempotency-Key": idem})
        assert again.status_code == 202 and again.json()["jobId"] == mine
        other = api.post("/jobs", json=body, headers={**bearer(OTHER_KEY), "Idempotency-Key": idem})
        assert other.status_code == 202 and other.json()["jobId"] != mine

    with psycopg.connect(migrated_db) as conn:
        left = conn.execute(
            "SELECT count(*) FROM jobs WHERE submitted_by ~ '^key-[0-9a-f]{16}$'"
        ).fetchone()
        assert left == (0,)
