"""Screening at the API (issue 29), against the real API, PostgreSQL and broker: each image of
``GET /jobs/{id}`` carries what screening decided and why, the job's error and log say what was
blocked, the risk review's tokens count in the job's Claude tokens, a held image of a job
without review is the seller's to decide (and only it), and ``GET /screening`` counts what each
check flagged per day. The job is submitted through the API, its events folded by the monitor's
own Folder."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from psycopg_pool import AsyncConnectionPool

from services.api.schemas.ops import ScreeningFlagsView
from services.monitor.fold import Folder
from shared.contract.events import Event, JobRequested, Priority, TokenCounts
from shared.contract.topics import JOBS_REQUESTED
from shared.tools.cli import main
from tests.services.api.conftest import API_KEY
from tests.services.api.test_api import job_body, one_event
from tests.services.api.test_review import decisions
from tests.services.monitor.test_fold_screening import (
    REVIEW,
    held,
    nike,
    screened,
    screening,
    twin,
)
from tests.support.events import product

OWNER = {"Authorization": f"Bearer {API_KEY}"}
TYPES = ("tshirt", "mug")


def submit(client: httpx.Client, bootstrap: str, **changes: Any) -> JobRequested:
    body = job_body(count=2, productTypes=list(TYPES), autoPublish=True, **changes)
    resp = client.post("/jobs", json=body, headers=OWNER)
    assert resp.status_code == 202, resp.text
    return one_event(bootstrap, JOBS_REQUESTED[Priority.HIGH], resp.json()["jobId"])


async def fold(pool: AsyncConnectionPool, events: list[Event]) -> None:
    folder = Folder(pool)
    for n, e in enumerate(events):
        await folder.fold(e, "t", 0, n)


def today_flags(client: httpx.Client) -> dict[tuple[str, str], int]:
    resp = client.get("/screening", params={"days": 1}, headers=OWNER)
    assert resp.status_code == 200, resp.text
    # The body is PostgreSQL's JSON, not the model's dump: it must still be the documented one.
    view = ScreeningFlagsView.model_validate(resp.json())
    totals: dict[str, int] = {}
    for f in view.flags:
        totals[f.check] = totals.get(f.check, 0) + f.flagged
    assert view.by_check == totals
    assert view.days == 1 and [f.day for f in view.flags] == sorted(
        (f.day for f in view.flags), reverse=True
    )
    today = datetime.now(UTC).date().isoformat()
    return {
        (f["check"], f["outcome"]): f["flagged"] for f in resp.json()["flags"] if f["day"] == today
    }


async def test_each_image_shows_its_screening_and_the_job_says_what_was_blocked(
    roles_api: httpx.Client, pipeline_topics: str, pool: AsyncConnectionPool
) -> None:
    before = today_flags(roles_api)
    job = submit(roles_api, pipeline_topics)
    spent = TokenCounts(input=300, output=40)
    blocked = screened(job, 0, screening(nike(), tokens=spent))
    fine = screened(job, 1, screening(tokens=spent))
    await fold(pool, [blocked, fine, *[product(job, 1, t) for t in TYPES]])

    resp = roles_api.get(f"/jobs/{job.job_id}", headers=OWNER)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    first, second = body["images"]
    assert first["screening"]["decision"] == "block"
    (reason,) = first["screening"]["reasons"]
    assert reason["check"] == "deny_list" and reason["outcome"] == "block"
    assert (reason["field"], reason["terms"]) == ("title", ["Nike"])
    assert reason["detail"] == "'NIKE' in the title matches the protected term Nike"
    assert second["screening"] == {"decision": "allow", "reasons": [], "checks": list(
        first["screening"]["checks"]
    )}  # fmt: skip
    # The seed's fields of an image are as they were.
    assert {"imageIndex", "sha256", "uri", "title", "tags"} <= set(first)
    view = body["job"]
    assert view["detailedStatus"] == "processing"  # image 2's products await publication
    for action in ("approve", "reject", "regenerate"):
        refused = roles_api.post(f"/jobs/{job.job_id}/images/0/{action}", headers=OWNER)
        assert refused.status_code == 409 and refused.json()["error"] == "blocked", refused.text
        assert refused.json()["detail"] == (
            "image 0 was blocked by screening (deny_list: Nike): nothing of it was made, there "
            "is nothing to decide"
        )
    # Both risk reviews are the job's Claude tokens (the briefs' are on no image here).
    assert (view["claudeInputTokens"], view["claudeOutputTokens"]) == (600, 80)
    (line,) = [e for e in body["logs"] if e["level"] == "error"]
    assert line["message"].startswith("image 1 blocked by screening: deny_list — 'Nike' in title")
    assert today_flags(roles_api).get(("deny_list", "block"), 0) == (
        before.get(("deny_list", "block"), 0) + 1
    )


async def test_a_held_image_of_a_job_without_review_is_the_sellers_to_decide(
    roles_api: httpx.Client,
    pipeline_topics: str,
    pool: AsyncConnectionPool,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    before = today_flags(roles_api)
    job = submit(roles_api, pipeline_topics)
    await fold(pool, [screened(job, 0, screening()), *[product(job, 0, t) for t in TYPES]])
    await fold(pool, [screened(job, 1, screening(twin("an-earlier-job", 0), nike(REVIEW)))])
    base = f"/jobs/{job.job_id}/images"

    # Image 2's products are still being made: held, but not ready.
    early = roles_api.post(f"{base}/1/approve", headers=OWNER)
    assert early.status_code == 409 and early.json()["error"] == "not_ready", early.text
    await fold(pool, [held(job, 1, t) for t in TYPES])

    resp = roles_api.get(f"/jobs/{job.job_id}", headers=OWNER).json()
    assert resp["job"]["detailedStatus"] == "processing"  # image 1's products to be published
    reasons = resp["images"][1]["screening"]["reasons"]
    assert [r["check"] for r in reasons] == ["near_duplicate", "deny_list"]
    assert reasons[0]["resembles"] == {
        "jobId": "an-earlier-job",
        "imageIndex": 0,
        "generation": 0,
        "distance": 3,
    }
    review = roles_api.get(f"/jobs/{job.job_id}/review", headers=OWNER).json()
    assert review["review"] is False
    shown = {i["imageIndex"]: (i["state"], i["screening"]["decision"]) for i in review["images"]}
    assert shown == {0: ("pending", "allow"), 1: ("awaiting", "review")}
    # `pod review list JOB` says why, for people.
    monkeypatch.setenv("POD_API_URL", str(roles_api.base_url))
    monkeypatch.setenv("POD_API_KEY", API_KEY)
    monkeypatch.setenv("COLUMNS", "250")
    assert main(["--text", "review", "list", job.job_id]) == 0
    table = capsys.readouterr().out
    assert "review: deny_list, near_duplicate" in table and "allow" in table, table
    queue = roles_api.get("/reviews", headers=OWNER).json()["reviews"]
    assert (job.job_id, 1) in {(r["jobId"], r["imageIndex"]) for r in queue}

    refused = roles_api.post(f"{base}/0/approve", headers=OWNER)
    assert refused.status_code == 409 and refused.json()["error"] == "not_reviewed", refused.text
    assert "screening did not hold image 0" in refused.json()["detail"]
    approved = roles_api.post(f"{base}/1/approve", headers=OWNER)
    assert approved.status_code == 202, approved.text
    (event,) = decisions(pipeline_topics, job.job_id)
    assert (event.payload.action, event.payload.image_index) == ("approve", 1)
    # The monitor folds the decision (a job without review: allowed for a held image).
    await fold(pool, [event])
    after = today_flags(roles_api)
    for key in (("near_duplicate", "review"), ("deny_list", "review")):
        assert after.get(key, 0) == before.get(key, 0) + 1, key


def test_screening_counts_are_by_day_and_the_window_is_checked(
    roles_api: httpx.Client,
) -> None:
    resp = roles_api.get("/screening", headers=OWNER)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["days"] == 7
    assert sum(body["byCheck"].values()) == sum(f["flagged"] for f in body["flags"])
    for bad in ("0", "367", "x"):
        wrong = roles_api.get("/screening", params={"days": bad}, headers=OWNER)
        assert wrong.status_code == 422, wrong.text
        assert [p["field"] for p in wrong.json()["detail"]] == ["days"]
    assert roles_api.get("/screening").status_code == 401
