"""``GET /jobs/{id}`` says what a job waits for, and ``/stats`` each vendor budget's use: from
the live instances' heartbeats (as the monitor records them), a retry's delay and the channels'
pending confirmations."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg

from shared.adapters.store import workers as worker_store
from shared.contract.events import JobWait, WorkerHeartbeat, WorkerHeartbeatPayload
from tests.support.infra import unique

LABEL = "Printify publishes (200 per 1800 s)"


def submit(api: httpx.Client) -> str:
    body = {
        "theme": unique("waits"),
        "style": "flat",
        "niche": "cats",
        "productTypes": ["tshirt", "mug"],
        "count": 1,
        "autoPublish": True,
    }
    resp = api.post("/jobs", json=body)
    assert resp.status_code == 202, resp.text
    return str(resp.json()["jobId"])


async def heartbeat(database_url: str, instance: str, waits: list[JobWait]) -> None:
    at = datetime.now(UTC)
    event = WorkerHeartbeat(
        job_id=instance,
        producer=instance,
        occurred_at=at,
        payload=WorkerHeartbeatPayload(
            service="publisher",
            instance_id=instance,
            host="test",
            pid=1,
            started_at=at,
            waits=waits,
        ),
    )
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        await worker_store.record_heartbeat(conn, event)


def waits_of(api: httpx.Client, job_id: str) -> list[dict[str, Any]]:
    resp = api.get(f"/jobs/{job_id}")
    assert resp.status_code == 200
    return list(resp.json()["waits"])


async def test_a_job_names_the_vendor_limit_it_waits_for_and_until_when(
    api: httpx.Client, migrated_db: str
) -> None:
    job_id = submit(api)
    assert waits_of(api, job_id) == []
    until = datetime.now(UTC) + timedelta(minutes=25)
    since = datetime.now(UTC) - timedelta(minutes=4)
    instance = f"publisher-{uuid.uuid4().hex[:8]}"
    wait = JobWait(job_id=job_id, kind="vendor_limit", what=LABEL, since=since, until=until)
    other = JobWait(job_id="someone-else", kind="vendor_limit", what=LABEL, since=since)
    await heartbeat(migrated_db, instance, [wait, wait, other])

    (shown,) = waits_of(api, job_id)
    assert shown["kind"] == "vendor_limit" and shown["stage"] == "publisher"
    assert shown["what"] == LABEL and shown["count"] == 2
    assert datetime.fromisoformat(shown["until"]) == until
    assert datetime.fromisoformat(shown["since"]) == since

    # The instance went silent: its waits are no longer claimed.
    async with await psycopg.AsyncConnection.connect(migrated_db, autocommit=True) as conn:
        await conn.execute(
            "UPDATE workers SET last_heartbeat = now() - interval '10 minutes' "
            "WHERE instance_id = %s",
            (instance,),
        )
    assert waits_of(api, job_id) == []


async def test_a_pending_confirmation_and_a_retry_are_waits_until_the_job_ends(
    api: httpx.Client, migrated_db: str
) -> None:
    job_id = submit(api)
    next_check = datetime.now(UTC) + timedelta(seconds=40)
    confirm_by = datetime.now(UTC) + timedelta(hours=1)
    retry_at = datetime.now(UTC) + timedelta(seconds=90)
    async with await psycopg.AsyncConnection.connect(migrated_db, autocommit=True) as conn:
        await conn.execute(
            "INSERT INTO publications (job_id, image_index, product_type, product_id, shop_id, "
            "sales_channel, event, confirm_by, next_check_at) "
            "VALUES (%s, 0, 'tshirt', 'p1', 's1', 'etsy', '{}', %s, %s)",
            (job_id, confirm_by, next_check),
        )
        await conn.execute(
            "UPDATE jobs SET status = 'retrying', retry_attempt = 1, next_retry_at = %s, "
            "last_error = 'Printify 503' WHERE job_id = %s",
            (retry_at, job_id),
        )
    shown = {w["kind"]: w for w in waits_of(api, job_id)}
    assert set(shown) == {"retry", "confirmation"}
    assert "Printify 503" in shown["retry"]["what"]
    assert datetime.fromisoformat(shown["retry"]["until"]) == retry_at
    confirmation = shown["confirmation"]
    assert confirmation["what"] == "etsy to confirm the listing"
    assert datetime.fromisoformat(confirmation["until"]) == next_check
    assert datetime.fromisoformat(confirmation["deadline"]) == confirm_by

    async with await psycopg.AsyncConnection.connect(migrated_db, autocommit=True) as conn:
        await conn.execute("UPDATE jobs SET status = 'completed' WHERE job_id = %s", (job_id,))
    assert waits_of(api, job_id) == []


async def test_stats_show_each_budgets_use_and_who_waits_on_it(
    api: httpx.Client, migrated_db: str
) -> None:
    name = f"printify:{uuid.uuid4().hex[:16]}:publishes"
    label = f"Printify publishes {uuid.uuid4().hex[:6]} (3 per 1800 s)"
    async with await psycopg.AsyncConnection.connect(migrated_db, autocommit=True) as conn:
        await conn.execute(
            "INSERT INTO rate_budgets (name, label, lim, window_s, rate_limited) "
            "VALUES (%s, %s, 3, 1800, 1)",
            (name, label),
        )
        await conn.execute(
            "INSERT INTO rate_grants (name, granted_at, released_at) VALUES "
            "(%s, now(), now()), (%s, now(), NULL), (%s, now() - interval '1 hour', "
            "now() - interval '59 minutes')",
            (name, name, name),
        )
    waiting = [
        JobWait(job_id=j, kind="vendor_limit", what=label, since=datetime.now(UTC))
        for j in ("a", "a", "b")
    ]
    await heartbeat(migrated_db, f"publisher-{uuid.uuid4().hex[:8]}", waiting)
    budgets = {b["name"]: b for b in api.get("/stats").json()["budgets"]}
    budget = budgets[name]
    assert (budget["label"], budget["limit"], budget["windowS"]) == (label, 3, 1800)
    assert budget["used"] == 2  # the grant answered an hour ago no longer counts
    assert (budget["waiting"], budget["jobsWaiting"]) == (3, 2)
    assert budget["rateLimited"] == 1 and budget["blockedUntil"] is None
