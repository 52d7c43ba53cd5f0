"""The API claims a job's id when it accepts the job, before the id is shown anywhere."""

from __future__ import annotations

import httpx
import pytest

from services.monitor.fold import Folder
from shared.adapters.store.job_claims import JobIdInUse
from shared.contract.events import JobRequested, Priority
from shared.contract.topics import JOBS_REQUESTED
from shared.platform.db import open_pool
from tests.services.api.test_api import job_body, one_event


async def test_a_request_that_outruns_an_accepted_job_cannot_take_its_id(
    api: httpx.Client, pipeline_topics: str, migrated_db: str
) -> None:
    """GET /jobs lists a job as soon as it is accepted: a request produced under its id onto
    another priority topic may be folded before the job's own. It is refused all the same."""
    resp = api.post("/jobs", json=job_body(priority="low"))
    assert resp.status_code == 202, resp.text
    job_id = resp.json()["jobId"]
    own = one_event(pipeline_topics, JOBS_REQUESTED[Priority.LOW], job_id)
    hijack = JobRequested(
        job_id=job_id,
        producer="other-system",
        payload=own.payload.model_copy(update={"theme": "skull", "priority": Priority.HIGH}),
    )
    pool = await open_pool(migrated_db, max_size=2)
    try:
        folder = Folder(pool)
        with pytest.raises(JobIdInUse, match="job id in use"):
            await folder.fold(hijack, JOBS_REQUESTED[Priority.HIGH], 0, 0)
        assert await folder.fold(own, JOBS_REQUESTED[Priority.LOW], 0, 0) is True
    finally:
        await pool.close()
    job = api.get(f"/jobs/{job_id}").json()
    assert job["job"]["theme"] == own.payload.theme
    assert [e["type"] for e in job["logs"]] == ["job.requested"]
