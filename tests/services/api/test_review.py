"""The seller's decisions at the front door, against the real API, PostgreSQL and broker: each is
checked, claimed once, and produced to seller.decisions before the 202; the same decision again
produces nothing, a conflicting one is a 409 with its reason, a broker failure gives the claim
back.

A job awaiting review is built through the real folds (the request submitted through the API,
its images and products folded by the monitor's Folder, which makes an image wait for the seller
once its products are all made).
"""

from __future__ import annotations

import asyncio
import io
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import psycopg
import pytest
from PIL import Image, ImageDraw
from psycopg_pool import AsyncConnectionPool

from services.api import review_queries
from services.api.decisions import cancel_decision_id
from services.monitor.fold import Folder
from shared.adapters.storage import LocalImageStorage
from shared.adapters.store import cancellations, reviews
from shared.contract.events import (
    JobRequested,
    JobRouting,
    PriceSummary,
    Priority,
    ProductCreated,
    SellerDecision,
    parse_event,
)
from shared.contract.topics import (
    IMAGES_GENERATED,
    JOBS_REQUESTED,
    PRODUCTS_CREATED,
    SELLER_DECISIONS,
)
from shared.tools.cli import main
from tests.services.api.conftest import ADMIN_KEY, API_KEY, SECOND_KEY, serve
from tests.services.api.test_api import job_body, messages_for, one_event
from tests.support.events import image, product
from tests.support.infra import free_port

OWNER = {"Authorization": f"Bearer {API_KEY}"}
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}


@dataclass
class ReviewedJob:
    job_id: str
    request: JobRequested


async def reviewed_job(
    client: httpx.Client,
    bootstrap: str,
    pool: AsyncConnectionPool,
    *,
    headers: dict[str, str] | None = None,
    awaiting: tuple[int, ...] = (0, 1),
    review: bool = True,
    store: LocalImageStorage | None = None,
    mockup: Callable[[str, int, str], str] | None = None,
) -> ReviewedJob:
    """A job with review of two images (tshirt + mug each), submitted through the API, its
    images and products folded; the images in ``awaiting`` wait for the seller (the others miss
    one product). With a
    ``store``, the images are real PNGs saved there; ``mockup(job, image, type)`` names each
    product's mockup (a Printify CDN URL otherwise)."""
    resp = client.post(
        "/jobs",
        json=job_body(count=2, productTypes=["tshirt", "mug"], review=review, autoPublish=True),
        headers=headers or {},
    )
    assert resp.status_code == 202, resp.text
    job_id = resp.json()["jobId"]
    request = one_event(bootstrap, JOBS_REQUESTED[Priority.HIGH], job_id)
    assert request.payload.review is review
    folder = Folder(pool)
    routing = request.payload.routing
    for i in range(2):
        made_image = image(request, i)
        if store is not None:
            saved = store.save(art(i))
            made_image = made_image.model_copy(
                update={
                    "payload": made_image.payload.model_copy(
                        update={
                            "sha256": saved.sha256,
                            "uri": saved.uri,
                            "width": 256,
                            "height": 256,
                            "prompt": f"a cat in autumn leaves, variant {i}",
                            "title": f"Autumn cat {i}",
                            "description": "A cat among falling leaves, for cat moms.",
                            "tags": ["cat", "autumn", f"variant-{i}"],
                        }
                    )
                }
            )
        await folder.fold(made_image, IMAGES_GENERATED, 0, i)
        for n, t in enumerate(("tshirt", "mug")):
            if i not in awaiting and t == "mug":
                continue  # one product of the image is still being made: not ready for review
            made = product(request, i, t)
            reviewed = made.model_copy(
                update={
                    "payload": made.payload.model_copy(
                        update={
                            "routing": JobRouting.model_validate(routing.model_dump()),
                            "mockups": [
                                mockup(job_id, i, t)
                                if mockup
                                else f"https://images.example/{job_id}/{i}/{t}.jpg"
                            ],
                            "prices": PriceSummary(
                                price_min_cents=2499,
                                price_max_cents=2999,
                                cost_min_cents=1200,
                                cost_max_cents=1400,
                                profit_min_cents=1099,
                                margin_min_percent=44.0,
                            ),
                        }
                    )
                }
            )
            assert isinstance(reviewed, ProductCreated)
            await folder.fold(reviewed, PRODUCTS_CREATED, 0, 10 * i + n)
    # The fold made each image whose products are all made wait for the seller (a job with
    # review), and no other.
    waiting = {r.image_index for r in await reviews.of_job(pool, job_id) if r.state == "awaiting"}
    assert waiting == (set(awaiting) if review else set())
    return ReviewedJob(job_id, request)


def art(seed: int) -> bytes:
    """A small PNG design: a cat's head on an autumn-coloured ground, its colours per seed."""
    ground = [(246, 196, 120), (200, 222, 240)][seed % 2]
    ink = [(150, 70, 30), (40, 60, 110)][seed % 2]
    picture = Image.new("RGB", (256, 256), ground)
    draw = ImageDraw.Draw(picture)
    draw.ellipse((58, 78, 198, 218), fill=ink)
    draw.polygon([(66, 120), (80, 40), (120, 86)], fill=ink)
    draw.polygon([(190, 120), (176, 40), (136, 86)], fill=ink)
    for x in (100, 156):
        draw.ellipse((x - 12, 130, x + 12, 154), fill=ground)
    for n in range(6):
        draw.ellipse((20 + 40 * n, 226, 44 + 40 * n, 250), fill=(214, 90 + 20 * n, 40))
    out = io.BytesIO()
    picture.save(out, "PNG")
    return out.getvalue()


def decisions(bootstrap: str, job_id: str) -> list[SellerDecision]:
    """The decisions on the topic about ``job_id``, in order."""
    found = [parse_event(m.value()) for m in messages_for(bootstrap, SELLER_DECISIONS, job_id)]
    assert all(isinstance(e, SellerDecision) for e in found)
    return [e for e in found if isinstance(e, SellerDecision)]


SECOND = {"Authorization": f"Bearer {SECOND_KEY}"}


async def test_an_approve_is_produced_once_and_its_repeat_answers_the_same_decision(
    roles_api: httpx.Client, pipeline_topics: str, pool: AsyncConnectionPool
) -> None:
    job = await reviewed_job(roles_api, pipeline_topics, pool, headers=OWNER)
    url = f"/jobs/{job.job_id}/images/1/approve"

    first = roles_api.post(url, json={"generation": 0}, headers=OWNER)
    assert first.status_code == 202, first.text
    body = first.json()
    assert body["action"] == "approve" and body["state"] == "approved"
    assert body["imageIndex"] == 1 and body["generation"] == 0
    owner = roles_api.get(f"/jobs/{job.job_id}", headers=OWNER).json()["job"]
    (event,) = decisions(pipeline_topics, job.job_id)
    assert str(event.payload.decision_id) == body["decisionId"]
    assert event.payload.action == "approve" and event.payload.image_index == 1
    assert event.payload.decided_by == body["decidedBy"] != "anonymous"
    assert owner["jobId"] == job.job_id

    again = roles_api.post(url, headers=OWNER)
    assert again.status_code == 200, again.text
    assert again.json()["decisionId"] == body["decisionId"]

    other = roles_api.post(f"/jobs/{job.job_id}/images/1/reject", headers=OWNER)
    assert other.status_code == 409, other.text
    assert other.json()["error"] == "already_decided"
    assert "image 1 was approved by" in other.json()["detail"]
    assert len(decisions(pipeline_topics, job.job_id)) == 1

    review = roles_api.get(f"/jobs/{job.job_id}/review", headers=SECOND).json()
    states = {i["imageIndex"]: i["state"] for i in review["images"]}
    assert states == {0: "awaiting", 1: "approved"}
    shown = review["images"][1]
    assert shown["decisionId"] == body["decisionId"] and shown["decision"] == "approve"
    assert {p["productType"] for p in shown["products"]} == {"tshirt", "mug"}
    mug = next(p for p in shown["products"] if p["productType"] == "mug")
    assert mug["mockups"] == [f"https://images.example/{job.job_id}/1/mug.jpg"]
    assert (mug["priceMinCents"], mug["profitMinCents"], mug["marginMinPercent"]) == (
        2499,
        1099,
        44.0,
    )
    assert shown["thumbnailUrl"] == f"/jobs/{job.job_id}/images/1?size=320"


async def test_two_concurrent_approves_make_exactly_one_event(
    roles_api: httpx.Client, pipeline_topics: str, pool: AsyncConnectionPool
) -> None:
    job = await reviewed_job(roles_api, pipeline_topics, pool, headers=OWNER)
    url = f"/jobs/{job.job_id}/images/0/approve"
    async with httpx.AsyncClient(base_url=str(roles_api.base_url), timeout=30) as client:
        answers = await asyncio.gather(
            *(client.post(url, headers=OWNER if n % 2 else ADMIN) for n in range(6))
        )
    codes = sorted(a.status_code for a in answers)
    assert codes == [200] * 5 + [202], [a.text for a in answers]
    assert len({a.json()["decisionId"] for a in answers}) == 1
    (event,) = decisions(pipeline_topics, job.job_id)
    assert str(event.payload.decision_id) == answers[0].json()["decisionId"]


async def test_a_regenerate_in_flight_refuses_other_decisions_until_the_new_image(
    roles_api: httpx.Client, pipeline_topics: str, pool: AsyncConnectionPool
) -> None:
    job = await reviewed_job(roles_api, pipeline_topics, pool, headers=OWNER)
    base = f"/jobs/{job.job_id}/images/0"
    regen = roles_api.post(
        f"{base}/regenerate", json={"prompt": "  a fox in the snow  "}, headers=OWNER
    )
    assert regen.status_code == 202, regen.text
    assert regen.json()["state"] == "regenerating"

    during = roles_api.post(f"{base}/approve", headers=OWNER)
    assert during.status_code == 409, during.text
    assert during.json()["detail"] == (
        "a regenerate of image 0 is in flight; wait for the new image"
    )
    assert roles_api.post(f"{base}/regenerate", headers=OWNER).status_code == 200
    (event,) = decisions(pipeline_topics, job.job_id)
    assert event.payload.action == "regenerate" and event.payload.prompt == "a fox in the snow"

    # The new image's products are made: generation 1 waits for the seller.
    async with pool.connection() as conn:
        assert await reviews.mark_awaiting(conn, job.job_id, 0, 1, event.occurred_at)
    stale = roles_api.post(f"{base}/approve", json={"generation": 0}, headers=OWNER)
    assert stale.status_code == 409 and stale.json()["error"] == "stale_generation", stale.text
    fresh = roles_api.post(f"{base}/approve", json={"generation": 1}, headers=OWNER)
    assert fresh.status_code == 202, fresh.text
    assert fresh.json()["generation"] == 1
    last = decisions(pipeline_topics, job.job_id)[-1]
    assert (last.payload.action, last.payload.generation) == ("approve", 1)


async def test_who_and_what_may_be_decided(
    roles_api: httpx.Client, pipeline_topics: str, pool: AsyncConnectionPool
) -> None:
    job = await reviewed_job(roles_api, pipeline_topics, pool, headers=OWNER, awaiting=(0,))
    base = f"/jobs/{job.job_id}/images"
    foreign = roles_api.post(f"{base}/0/approve", headers=SECOND)
    assert foreign.status_code == 403 and "another API key" in foreign.json()["detail"]
    assert roles_api.post(f"{base}/0/approve").status_code == 401

    not_ready = roles_api.post(f"{base}/1/approve", headers=OWNER)
    assert not_ready.status_code == 409, not_ready.text
    assert not_ready.json()["detail"] == (
        "image 1 is not ready for review (its products are still being made)"
    )
    assert roles_api.post(f"{base}/2/approve", headers=OWNER).status_code == 404
    assert roles_api.post("/jobs/no-such-job/images/0/approve", headers=OWNER).status_code == 404

    for body, field in (
        ({"prompt": ""}, "prompt"),
        ({"prompt": "x" * 4001}, "prompt"),
        ({"generation": -1}, "generation"),
        ({"generation": "1"}, "generation"),
        ({"seed": 4}, "seed"),
    ):
        bad = roles_api.post(f"{base}/0/regenerate", json=body, headers=OWNER)
        assert bad.status_code == 422, (body, bad.text)
        assert [p["field"] for p in bad.json()["detail"]] == [field], bad.text

    plain = await reviewed_job(roles_api, pipeline_topics, pool, headers=OWNER, review=False)
    unreviewed = roles_api.post(f"/jobs/{plain.job_id}/images/0/approve", headers=OWNER)
    assert unreviewed.status_code == 409 and unreviewed.json()["error"] == "not_reviewed"

    # The admin key may decide about anyone's job.
    admin = roles_api.post(f"{base}/0/reject", headers=ADMIN)
    assert admin.status_code == 202, admin.text
    assert [e.payload.action for e in decisions(pipeline_topics, job.job_id)] == ["reject"]


async def test_a_broker_that_does_not_ack_gives_the_claim_back(
    roles_api: httpx.Client, pipeline_topics: str, pool: AsyncConnectionPool, migrated_db: str
) -> None:
    job = await reviewed_job(roles_api, pipeline_topics, pool, headers=OWNER)
    with serve(
        kafka_bootstrap_servers=f"127.0.0.1:{free_port()}",
        database_url=migrated_db,
        api_keys=API_KEY,
        produce_timeout_s=1,
        health_timeout_s=1,
        shutdown_flush_s=0,
    ) as down:
        refused = down.post(f"/jobs/{job.job_id}/images/0/approve", headers=OWNER)
        assert refused.status_code == 503, refused.text
        assert "not accepted" in refused.json()["detail"]
        row = await reviews.get(pool, job.job_id, 0)
        assert row is not None and row.state == "awaiting" and row.decision_id is None
        cancel = down.post(f"/jobs/{job.job_id}/cancel", headers=OWNER)
        assert cancel.status_code == 503, cancel.text
    # Nothing was decided: the seller decides again, now on a broker that acknowledges.
    again = roles_api.post(f"/jobs/{job.job_id}/images/0/approve", headers=OWNER)
    assert again.status_code == 202, again.text
    assert roles_api.post(f"/jobs/{job.job_id}/cancel", headers=OWNER).status_code == 202
    assert [e.payload.action for e in decisions(pipeline_topics, job.job_id)] == [
        "approve",
        "cancel",
    ]


async def test_a_claim_never_produced_is_produced_again_as_the_same_decision(
    roles_api: httpx.Client, pipeline_topics: str, pool: AsyncConnectionPool, migrated_db: str
) -> None:
    """An API that crashed between its claim and its produce left a claim nobody confirms: a
    repeat of the decision after STALE_CLAIM_S produces it (same decision id, same event id)."""
    job = await reviewed_job(roles_api, pipeline_topics, pool, headers=OWNER)
    decision_id = uuid.uuid4()
    claimed = await reviews.claim(
        pool,
        job_id=job.job_id,
        image_index=0,
        to="rejected",
        action="reject",
        decision_id=decision_id,
        decided_by="caller-crashed",
    )
    assert claimed is not None
    url = f"/jobs/{job.job_id}/images/0/reject"
    fresh = roles_api.post(url, headers=OWNER)
    assert fresh.status_code == 200 and fresh.json()["decisionId"] == str(decision_id)
    assert decisions(pipeline_topics, job.job_id) == []

    with psycopg.connect(migrated_db, autocommit=True) as conn:
        conn.execute(
            "UPDATE image_reviews SET decided_at = now() - interval '1 minute'"
            " WHERE job_id = %s AND image_index = 0",
            (job.job_id,),
        )
    stale = roles_api.post(url, headers=OWNER)
    assert stale.status_code == 202, stale.text
    assert stale.json()["decisionId"] == str(decision_id)
    (event,) = decisions(pipeline_topics, job.job_id)
    assert event.payload.decision_id == decision_id
    assert event.payload.decided_by == "caller-crashed"

    # Folded: confirmed, never produced again whatever its age.
    async with pool.connection() as conn:
        assert await reviews.mark_folded(conn, job.job_id, 0, decision_id)
        await conn.execute(
            "UPDATE image_reviews SET decided_at = now() - interval '1 hour' WHERE job_id = %s",
            (job.job_id,),
        )
    assert roles_api.post(url, headers=OWNER).status_code == 200
    assert len(decisions(pipeline_topics, job.job_id)) == 1


async def test_a_cancel_is_produced_once_and_ends_the_review(
    roles_api: httpx.Client, pipeline_topics: str, pool: AsyncConnectionPool
) -> None:
    job = await reviewed_job(roles_api, pipeline_topics, pool, headers=OWNER)
    assert roles_api.post(f"/jobs/{job.job_id}/cancel", headers=SECOND).status_code == 403

    first = roles_api.post(
        f"/jobs/{job.job_id}/cancel", json={"reason": "wrong niche"}, headers=OWNER
    )
    assert first.status_code == 202, first.text
    assert first.json()["detailedStatus"] == "cancelled"
    assert first.json()["decisionId"] == str(cancel_decision_id(job.job_id))
    again = roles_api.post(f"/jobs/{job.job_id}/cancel", headers=ADMIN)
    assert again.status_code == 200 and again.json()["decisionId"] == first.json()["decisionId"]
    assert again.json()["decidedBy"] == first.json()["decidedBy"]

    late = roles_api.post(f"/jobs/{job.job_id}/images/0/approve", headers=OWNER)
    assert late.status_code == 409 and late.json()["error"] == "job_cancelled", late.text
    (event,) = decisions(pipeline_topics, job.job_id)
    assert event.payload.action == "cancel" and event.payload.reason == "wrong niche"
    assert roles_api.get(f"/jobs/{job.job_id}/review", headers=OWNER).json()["cancelled"]


async def test_a_job_that_ended_with_nothing_made_has_nothing_to_cancel(
    roles_api: httpx.Client, pipeline_topics: str, migrated_db: str
) -> None:
    resp = roles_api.post("/jobs", json=job_body(review=True), headers=OWNER)
    job_id = resp.json()["jobId"]
    with psycopg.connect(migrated_db, autocommit=True) as conn:
        conn.execute("UPDATE jobs SET status = 'failed' WHERE job_id = %s", (job_id,))
    ended = roles_api.post(f"/jobs/{job_id}/cancel", headers=OWNER)
    assert ended.status_code == 409 and ended.json()["error"] == "nothing_to_cancel", ended.text
    assert decisions(pipeline_topics, job_id) == []


async def test_the_review_queue_lists_the_callers_awaiting_images_oldest_first(
    roles_api: httpx.Client, pipeline_topics: str, pool: AsyncConnectionPool
) -> None:
    mine = await reviewed_job(roles_api, pipeline_topics, pool, headers=OWNER)
    theirs = await reviewed_job(roles_api, pipeline_topics, pool, headers=SECOND, awaiting=(1,))
    listed = roles_api.get("/reviews", params={"limit": 200}, headers=SECOND).json()
    keys = [(r["jobId"], r["imageIndex"]) for r in listed["reviews"]]
    assert (theirs.job_id, 1) in keys and all(j != mine.job_id for j, _ in keys)
    item = next(r for r in listed["reviews"] if r["jobId"] == theirs.job_id)
    assert item["productCount"] == 2 and item["title"] == "T1"
    waited = [r["awaitingSince"] for r in listed["reviews"]]
    assert waited == sorted(waited)

    everyone = roles_api.get("/reviews", params={"limit": 200}, headers=ADMIN).json()
    every_key = {(r["jobId"], r["imageIndex"]) for r in everyone["reviews"]}
    assert {(mine.job_id, 0), (mine.job_id, 1), (theirs.job_id, 1)} <= every_key
    assert everyone["total"] >= listed["total"] + 2

    bad = roles_api.get("/reviews", params={"state": "maybe"}, headers=OWNER)
    assert bad.status_code == 422 and bad.json()["detail"][0]["field"] == "state"


async def test_pod_review_and_pod_cancel(
    roles_api: httpx.Client,
    pipeline_topics: str,
    pool: AsyncConnectionPool,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("POD_API_URL", str(roles_api.base_url))
    monkeypatch.setenv("POD_API_KEY", API_KEY)
    job = await reviewed_job(roles_api, pipeline_topics, pool, headers=OWNER)

    def pod(*argv: str) -> tuple[int, Any]:
        code = main(["--json", *argv])
        return code, json.loads(capsys.readouterr().out)

    code, queue = pod("review", "list", "--limit", "200")
    assert code == 0
    assert {(job.job_id, 0), (job.job_id, 1)} <= {
        (r["jobId"], r["imageIndex"]) for r in queue["reviews"]
    }
    code, shown = pod("review", "list", job.job_id)
    assert code == 0 and [i["state"] for i in shown["images"]] == ["awaiting", "awaiting"]

    code, approved = pod("review", "approve", job.job_id, "0", "--generation", "0")
    assert code == 0 and approved["state"] == "approved"
    code, refused = pod("review", "reject", job.job_id, "0")
    assert code == 1 and refused["error"] == "already_decided"
    assert "image 0 was approved by" in refused["detail"]
    code, regenerated = pod("review", "regenerate", job.job_id, "1", "--prompt", "an owl")
    assert code == 0 and regenerated["state"] == "regenerating"
    code, in_flight = pod("review", "approve", job.job_id, "1")
    assert code == 1 and in_flight["error"] == "regenerate_in_flight"
    code, cancelled = pod("cancel", job.job_id, "--reason", "enough")
    assert code == 0 and cancelled["detailedStatus"] == "cancelled"

    got = [
        (e.payload.action, e.payload.image_index) for e in decisions(pipeline_topics, job.job_id)
    ]
    assert got == [("approve", 0), ("regenerate", 1), ("cancel", None)]
    assert decisions(pipeline_topics, job.job_id)[1].payload.prompt == "an owl"

    # For people: the 409's reason on stderr, in words.
    assert main(["--text", "review", "reject", job.job_id, "0"]) == 1
    err = capsys.readouterr().err
    assert "409" in err and "cancelled" in err


async def test_a_cancel_claimed_but_never_produced_is_produced_again(
    roles_api: httpx.Client, pipeline_topics: str, pool: AsyncConnectionPool, migrated_db: str
) -> None:
    """As for an image: a cancel claim no stage recorded after STALE_CLAIM_S is produced again by
    the next cancel (the same decision, by whoever claimed it); once recorded, never again."""
    job = await reviewed_job(roles_api, pipeline_topics, pool, headers=OWNER)
    assert await review_queries.claim_cancel(pool, job.job_id, "caller-crashed")
    url = f"/jobs/{job.job_id}/cancel"
    fresh = roles_api.post(url, headers=OWNER)
    assert fresh.status_code == 200 and fresh.json()["decidedBy"] == "caller-crashed", fresh.text
    assert decisions(pipeline_topics, job.job_id) == []

    with psycopg.connect(migrated_db, autocommit=True) as conn:
        conn.execute(
            "UPDATE jobs SET updated_at = now() - interval '1 minute' WHERE job_id = %s",
            (job.job_id,),
        )
    stale = roles_api.post(url, headers=OWNER)
    assert stale.status_code == 202, stale.text
    (event,) = decisions(pipeline_topics, job.job_id)
    assert event.payload.decision_id == cancel_decision_id(job.job_id)
    assert event.payload.decided_by == "caller-crashed"

    async with pool.connection() as conn:
        assert await cancellations.record(
            conn,
            job_id=job.job_id,
            decision_id=event.payload.decision_id,
            decided_by="caller-crashed",
            at=event.occurred_at,
        )
        await conn.execute(
            "UPDATE jobs SET updated_at = now() - interval '1 hour' WHERE job_id = %s",
            (job.job_id,),
        )
    assert roles_api.post(url, headers=OWNER).status_code == 200
    assert len(decisions(pipeline_topics, job.job_id)) == 1
