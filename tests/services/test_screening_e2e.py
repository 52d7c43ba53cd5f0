"""Screening end to end (decision §49): on a whole stack, every design passes the deny list, OCR
of the art, Claude's risk review (the simulator judges), the near-duplicate index and the
unsafe-image classifier before the printify stage sees it.

The deployment here sends a deny-list hit in the copy to review (SCREENING_POLICY), so both
outcomes show: a mark in the copy holds the design for the seller; a mark printed in the art
(OCR) blocks it, as the default policy does. Outcomes are read where they land: the API's job,
the Printify simulator's books, the dashboard's counts.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from devstack.stack import Stack
from services.printify.handler import sku_prefix
from shared.contract.events import ScreeningCheck
from tests.services.conftest import e2e_stack
from tests.support.infra import wait_for
from tests.support.pipeline import api, job, printify_books, status, submit, wait_done


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    env = {"SCREENING_POLICY": json.dumps({"deny_list": "review"})}
    with e2e_stack("screening", env=env) as s:
        yield s


def screening_of(detail: dict[str, Any], index: int = 0) -> dict[str, Any]:
    [image] = [i for i in detail["images"] if i["imageIndex"] == index]
    found = image["screening"]
    assert found is not None, image
    return dict(found)


def printify_products(s: Stack) -> dict[str, dict[str, Any]]:
    account = next(iter(printify_books(s)["accounts"].values()))
    return {p["product_id"]: p for p in account["products"]}


def test_an_ordinary_design_passes_every_check(stack: Stack) -> None:
    job_id = submit(stack, theme="autumn cats", style="watercolor", niche="cat moms")
    detail = wait_done(stack, [job_id], timeout=120)[job_id]
    assert detail["job"]["detailedStatus"] == "completed", detail["job"]["error"]
    s = screening_of(detail)
    assert s["decision"] == "allow" and s["reasons"] == []
    # Every check ran: the deny list, OCR, Claude, the hash index and the classifier.
    assert sorted(s["checks"]) == sorted(c.value for c in ScreeningCheck)


def test_a_mark_in_the_copy_holds_the_design_until_the_seller_approves_it(stack: Stack) -> None:
    job_id = submit(stack, theme="Mickey Mouse birthday", autoPublish=True)
    wait_for(
        lambda: status(stack, job_id) == "awaiting_review", 120, "the design held", interval=0.3
    )
    detail = job(stack, job_id)
    s = screening_of(detail)
    assert s["decision"] == "review"
    flagged = {r["check"]: r for r in s["reasons"]}
    assert "Mickey Mouse" in flagged["deny_list"]["terms"], s
    assert flagged["deny_list"]["outcome"] == "review"
    # Claude (the simulator's judge) names it too.
    assert flagged["risk_review"]["level"] == "high", s
    made = {p["productId"] for p in detail["products"]}
    assert made, detail
    calls = next(iter(printify_books(stack)["accounts"].values()))["publish_calls"]
    assert not made & set(calls), "a held design was published"

    approved = httpx.post(f"{api(stack)}/jobs/{job_id}/images/0/approve", timeout=10)
    assert approved.status_code == 202, approved.text
    detail = wait_done(stack, [job_id], timeout=120)[job_id]
    assert detail["job"]["detailedStatus"] == "completed", detail["job"]["error"]
    calls = next(iter(printify_books(stack)["accounts"].values()))["publish_calls"]
    assert {pid: calls.get(pid) for pid in made} == dict.fromkeys(made, 1)


def test_a_mark_printed_in_the_art_is_read_and_blocks_the_design(stack: Stack) -> None:
    job_id = submit(
        stack,
        theme="motivation",
        prompt='a retro sunset poster with the text "JUST DO IT" in bold letters',
        autoPublish=True,
    )
    detail = wait_done(stack, [job_id], timeout=120)[job_id]
    assert detail["job"]["detailedStatus"] == "failed"
    assert "blocked by screening" in (detail["job"]["error"] or ""), detail["job"]
    s = screening_of(detail)
    assert s["decision"] == "block"
    art = [r for r in s["reasons"] if r["check"] == "rendered_text"]
    assert art and art[0]["field"] == "image_text" and art[0]["outcome"] == "block", s
    assert "Just Do It" in art[0]["terms"], art
    # Nothing of it reached Printify.
    assert detail["products"] == []
    marker = sku_prefix(job_id, 0, "tshirt")
    assert not any(
        sku.startswith(marker) for p in printify_products(stack).values() for sku in p["skus"]
    )

    # The dashboard counts what each check flagged today.
    counts = httpx.get(f"{api(stack)}/screening", params={"days": 1}, timeout=10).json()
    assert counts["byCheck"].get("rendered_text", 0) >= 1, counts
    assert counts["byCheck"].get("deny_list", 0) >= 1, counts
