"""After launch, at the front door: unpublish, delete and reprice of a job's products (and a
reprice of a niche), against the real API, PostgreSQL and broker: each checked against the job
and produced to seller.decisions for the stages; `pod unpublish|delete|reprice`."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from psycopg_pool import AsyncConnectionPool

from shared.tools.cli import main
from tests.services.api.conftest import API_KEY
from tests.services.api.test_review import (
    ADMIN,
    OWNER,
    SECOND,
    decisions,
    reviewed_job,
)


async def test_after_launch_decisions_are_checked_and_produced(
    roles_api: httpx.Client, pipeline_topics: str, pool: AsyncConnectionPool
) -> None:
    job = await reviewed_job(roles_api, pipeline_topics, pool, headers=OWNER, review=False)
    base = f"/jobs/{job.job_id}"
    off = roles_api.post(f"{base}/unpublish", json={"channels": ["printify"]}, headers=OWNER)
    assert off.status_code == 202, off.text
    scoped = roles_api.post(
        f"{base}/delete", json={"imageIndex": 1, "productType": "mug"}, headers=OWNER
    )
    assert scoped.status_code == 202, scoped.text
    priced = roles_api.post(f"{base}/reprice", json={"marginPercent": 55}, headers=OWNER)
    assert priced.status_code == 202, priced.text
    # The same Idempotency-Key is the same decision.
    keyed = [
        roles_api.post(
            f"{base}/reprice", json={"marginPercent": 60}, headers=OWNER | {"Idempotency-Key": "k1"}
        ).json()["decisionId"]
        for _ in range(2)
    ]
    assert keyed[0] == keyed[1]

    made = decisions(pipeline_topics, job.job_id)
    got = [(d.payload.action, d.payload.image_index, d.payload.product_type) for d in made]
    assert got == [
        ("unpublish", None, None), ("delete", 1, "mug"), ("reprice", None, None),
        ("reprice", None, None), ("reprice", None, None),
    ]  # fmt: skip
    assert made[0].payload.channels == ["printify"]
    assert [d.payload.margin_percent for d in made[2:]] == [55, 60, 60]
    # The keyed repeat is the same event: every stage sees one decision.
    assert made[3].event_id == made[4].event_id

    # Checked against the job: its channels, images and types; its owner; a sane margin.
    for body, field in (
        ({"channels": ["etsy"]}, "channels"),
        ({"imageIndex": 2}, "imageIndex"),
        ({"productType": "hoodie"}, "productType"),
    ):
        bad = roles_api.post(f"{base}/unpublish", json=body, headers=OWNER)
        assert bad.status_code == 422, bad.text
        assert [p["field"] for p in bad.json()["detail"]] == [field], bad.text
    for margin in (-1, 95, "x"):
        bad = roles_api.post(f"{base}/reprice", json={"marginPercent": margin}, headers=OWNER)
        assert bad.status_code == 422 and "marginPercent" in bad.text, bad.text
    assert roles_api.post(f"{base}/delete", headers=SECOND).status_code == 403
    assert roles_api.post(f"{base}/delete", headers=ADMIN).status_code == 202
    assert roles_api.post("/jobs/nope/delete", headers=OWNER).status_code == 404


async def test_a_job_with_nothing_made_or_cancelled_has_nothing_to_change(
    roles_api: httpx.Client, pipeline_topics: str, pool: AsyncConnectionPool
) -> None:
    resp = roles_api.post(
        "/jobs",
        json={"theme": "t", "style": "s", "niche": "n", "productTypes": ["mug"], "count": 1},
        headers=OWNER,
    )
    job_id = resp.json()["jobId"]
    early = roles_api.post(f"/jobs/{job_id}/unpublish", headers=OWNER)
    assert early.status_code == 409 and early.json()["error"] == "nothing_made", early.text
    job = await reviewed_job(roles_api, pipeline_topics, pool, headers=OWNER, review=False)
    assert roles_api.post(f"/jobs/{job.job_id}/cancel", headers=OWNER).status_code == 202
    late = roles_api.post(f"/jobs/{job.job_id}/reprice", json={"marginPercent": 50}, headers=OWNER)
    assert late.status_code == 409 and late.json()["error"] == "job_cancelled", late.text


def test_a_niche_reprice_needs_a_scope_and_finds_only_listed_jobs(roles_api: httpx.Client) -> None:
    none = roles_api.post("/reprice", json={"marginPercent": 50}, headers=OWNER)
    assert none.status_code == 422 and "niche" in none.text, none.text
    # No job of this niche ended with something listed.
    empty = roles_api.post(
        "/reprice", json={"marginPercent": 50, "niche": "no-such-niche-9f2"}, headers=OWNER
    )
    assert empty.status_code == 404, empty.text


async def test_pod_unpublish_delete_and_reprice(
    roles_api: httpx.Client,
    pipeline_topics: str,
    pool: AsyncConnectionPool,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("POD_API_URL", str(roles_api.base_url))
    monkeypatch.setenv("POD_API_KEY", API_KEY)
    job = await reviewed_job(roles_api, pipeline_topics, pool, headers=OWNER, review=False)

    def pod(*argv: str) -> tuple[int, Any]:
        code = main(["--json", *argv])
        return code, json.loads(capsys.readouterr().out or "null")

    code, body = pod("unpublish", job.job_id, "--channels", "printify", "--image", "0")
    assert code == 0 and body["action"] == "unpublish"
    code, body = pod("reprice", job.job_id, "--margin", "45", "--type", "tshirt")
    assert code == 0 and body["action"] == "reprice"
    code, body = pod("delete", job.job_id, "--channels", "etsy")
    assert code == 1 and body["detail"][0]["field"] == "channels"
    # Neither a job nor a niche, theme or --all: an incomplete command, nothing sent.
    assert main(["--json", "reprice", "--margin", "45"]) == 2
    assert "name a job" in capsys.readouterr().out
    made = decisions(pipeline_topics, job.job_id)
    assert [(d.payload.action, d.payload.image_index) for d in made] == [
        ("unpublish", 0), ("reprice", None)
    ]  # fmt: skip
    assert made[1].payload.product_type == "tshirt" and made[1].payload.margin_percent == 45
