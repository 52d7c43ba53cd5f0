"""The key is checked before anything is looked up: without a valid key (or without the admin
role) every protected operation of the OpenAPI document answers the same for an id that exists
and one that does not, so ids cannot be probed."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import psycopg
import pytest

from tests.services.api.conftest import ADMIN_KEY, API_KEY
from tests.services.api.test_api import job_body
from tests.services.api.test_roles import bearer


@pytest.fixture(scope="module")
def existing(api_roles: httpx.Client, migrated_db: str) -> Iterator[dict[str, Any]]:
    """Ids of each kind that exist: a job with an image, a worker, a dead letter."""
    job_id = api_roles.post("/jobs", json=job_body(), headers=bearer(ADMIN_KEY)).json()["jobId"]
    worker = f"generator-probe-{uuid.uuid4().hex[:6]}"
    with psycopg.connect(migrated_db, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO images (job_id, image_index, sha256, uri, width, height, prompt, title,"
            " description, tags, created_at)"
            " VALUES (%s, 0, %s, 'file:///nowhere.png', 8, 8, 'p', 't', 'd', '{}', now())",
            (job_id, "0" * 64),
        )
        conn.execute(
            "INSERT INTO workers (instance_id, service, host, pid, started_at, last_heartbeat)"
            " VALUES (%s, 'generator', 'probe', 1, now(), now())",
            (worker,),
        )
        letter = conn.execute(
            "INSERT INTO dead_letters (topic, kafka_partition, kafka_offset, stage, error_class,"
            " message, failed_at, job_id) VALUES ('probe', 0, 0, 'printify', 'E', 'm', now(), %s)"
            " RETURNING id",
            (job_id,),
        ).fetchone()
    assert letter is not None
    yield {
        "job_id": job_id,
        "image_index": 0,
        "instance_id": worker,
        "letter": letter[0],
        "name": "images.generated",
    }
    with psycopg.connect(migrated_db, autocommit=True) as conn:
        conn.execute("DELETE FROM workers WHERE instance_id = %s", (worker,))
        conn.execute("DELETE FROM dead_letters WHERE id = %s", (letter[0],))


MISSING: dict[str, Any] = {
    "job_id": "no-such-job",
    "image_index": 7,
    "instance_id": "generator-none",
    "letter": 2**40,
    "name": "no.such.topic",
}


def _requests(document: dict[str, Any], ids: dict[str, Any]) -> list[tuple[str, str, Any]]:
    """(method, path, json body) of every protected operation, its ids taken from ``ids``."""
    out: list[tuple[str, str, Any]] = []
    for template, operations in document["paths"].items():
        for method, operation in operations.items():
            if not operation.get("security"):
                continue  # /health*, the Printify webhook (its signature is its key)
            names = ("job_id", "image_index", "instance_id", "name")
            path = template.format(**{k: ids[k] for k in names})
            body: Any = None
            if method == "post":
                # A body naming an existing or a missing thing, where the operation takes one.
                body = {"id": ids["letter"]} if template == "/dlq/replay" else {}
            out.append((method.upper(), path, body))
    return out


def test_every_protected_operation_answers_alike_for_existing_and_missing_ids(
    api_roles: httpx.Client, existing: dict[str, Any]
) -> None:
    document = api_roles.get("/openapi.json", headers=bearer(ADMIN_KEY)).json()
    found = _requests(document, existing)
    missing = _requests(document, MISSING)
    assert len(found) >= 15, found
    # The ids exist indeed: with the admin key the lookups tell them apart.
    assert (
        api_roles.get(f"/jobs/{existing['job_id']}", headers=bearer(ADMIN_KEY)).status_code == 200
    )
    assert api_roles.get("/jobs/no-such-job", headers=bearer(ADMIN_KEY)).status_code == 404

    compared = 0
    for (method, path, body), (_, other_path, other_body) in zip(found, missing, strict=True):
        for headers in ({}, bearer("not-a-key"), {"Authorization": "Basic eDp5"}):
            a = api_roles.request(method, path, json=body, headers=headers, timeout=10)
            b = api_roles.request(method, other_path, json=other_body, headers=headers, timeout=10)
            assert a.status_code == 401, (method, path, headers, a.text)
            assert (b.status_code, b.json()) == (a.status_code, a.json()), (method, path)
            compared += 1
    assert compared >= 45

    # A normal key on an admin operation: 403 alike, whatever the id.
    admin_only = [
        ("POST", f"/workers/{existing['instance_id']}/restart", None),
        ("POST", "/workers/generator-none/restart", None),
        ("POST", "/dlq/replay", {"id": existing["letter"]}),
        ("POST", "/dlq/replay", {"id": MISSING["letter"]}),
    ]
    answers = [api_roles.request(m, p, json=b, headers=bearer(API_KEY)) for m, p, b in admin_only]
    assert {(r.status_code, r.text) for r in answers[:2]} == {
        (answers[0].status_code, answers[0].text)
    }
    assert answers[0].status_code == 403 and answers[2].status_code == 403
    assert answers[2].text == answers[3].text
