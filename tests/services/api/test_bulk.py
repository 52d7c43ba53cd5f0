"""POST /jobs/bulk: a CSV of jobs against the real broker and database. Each line is checked as
POST /jobs checks a body; the same file sent again submits nothing twice; a line the broker
refuses stops the file there, and sending the file again completes it without duplicates."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import psycopg
from confluent_kafka.admin import (  # type: ignore[attr-defined]
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    ResourceType,
)

from shared.contract.events import Priority
from shared.contract.topics import JOBS_REQUESTED
from tests.services.api.conftest import API_KEY, OTHER_KEY, serve
from tests.support.infra import unique

HEADER = "theme,style,niche,types,count,priority,channels,prompt,review,autoPublish"
CSV = {"Content-Type": "text/csv"}


def post(api: httpx.Client, text: str, **headers: str) -> httpx.Response:
    return api.post("/jobs/bulk", content=text.encode(), headers={**CSV, **headers})


def by_line(resp: httpx.Response) -> dict[int, dict[str, Any]]:
    return {line["line"]: line for line in resp.json()["lines"]}


def test_each_line_is_submitted_once_however_often_the_file_is_sent(
    api: httpx.Client, migrated_db: str
) -> None:
    theme = unique("bulk owls")
    text = "\n".join(
        [
            HEADER,
            f"{theme},flat,owls,tshirt|mug,2,high,,a wise owl,,true",
            f"{theme},flat,owls,tshirt;hoodie,1,7,printify,,false,",
            "",  # blank lines are skipped, and still counted in the numbering
            f"{theme},flat,owls,tshirt|mug,2,high,,a wise owl,,true",  # the same as line 2
            f"{theme},flat,owls,tshirt,many,low,,,,",
            f"{theme}, flat , owls ,tshirt | mug,2,HIGH,,a wise owl,,TRUE",  # line 2, spaced
        ]
    )
    first = post(api, text)
    assert first.status_code == 200, first.text
    lines = by_line(first)
    assert [lines[n]["status"] for n in sorted(lines)] == [
        "accepted",
        "accepted",
        "accepted",
        "invalid",
        "accepted",
    ]
    assert sorted(lines) == [2, 3, 5, 6, 7]
    assert lines[6]["errors"] == [{"field": "count", "message": "must be an integer"}]
    assert lines[6]["jobId"] is None
    # Identical lines are different jobs (a file may ask for the same thing twice on purpose).
    jobs = {n: lines[n]["jobId"] for n in (2, 3, 5, 7)}
    assert len(set(jobs.values())) == 4
    assert first.json()["ok"] is False and first.json()["accepted"] == 4
    detail = api.get(f"/jobs/{jobs[3]}").json()["job"]
    assert detail["request"]["productTypes"] == ["tshirt", "hoodie"]
    assert detail["priority"] == 7 and detail["band"] == "normal"
    assert detail["channels"] == ["printify"] and detail["autoPublish"] is False
    assert api.get(f"/jobs/{jobs[7]}").json()["job"]["style"] == "flat"

    again = post(api, text)
    assert again.status_code == 200, again.text
    relines = by_line(again)
    assert {n: relines[n]["jobId"] for n in jobs} == jobs
    assert {relines[n]["status"] for n in jobs} == {"already_accepted"}

    # An edited line is a new job; the others are still the ones accepted before.
    edited = text.replace("tshirt;hoodie,1,7", "tshirt;hoodie,1,8")
    third = by_line(post(api, edited))
    assert third[3]["status"] == "accepted" and third[3]["jobId"] != jobs[3]
    assert {third[n]["jobId"] for n in (2, 5, 7)} == {jobs[2], jobs[5], jobs[7]}
    with psycopg.connect(migrated_db) as conn:
        row = conn.execute("SELECT count(*) FROM jobs WHERE theme = %s", (theme,)).fetchone()
    assert row == (5,)


def test_a_lines_errors_are_those_post_jobs_gives_for_the_same_body(api: httpx.Client) -> None:
    theme = unique("bulk errors")
    text = "\n".join(
        [
            "Theme,style,niche,types,count,priority,channels",  # header names in any case
            f"{theme},flat,owls,tshirt|sock,0,urgent,",
            f"{theme},flat,owls,tshirt,1,normal,printify|ebay",
            ",flat,owls,tshirt,1,normal,,extra",
        ]
    )
    resp = post(api, text)
    assert resp.status_code == 200, resp.text
    lines = by_line(resp)
    same = api.post(
        "/jobs",
        json={
            "theme": theme,
            "style": "flat",
            "niche": "owls",
            "productTypes": ["tshirt", "sock"],
            "count": 0,
            "priority": "urgent",
        },
    )
    assert same.status_code == 422
    # The same messages, named by the file's columns (types for productTypes).
    expected = [
        {**p, "field": p["field"].replace("productTypes", "types")} for p in same.json()["detail"]
    ]
    assert sorted(lines[2]["errors"], key=str) == sorted(expected, key=str)
    assert {p["field"] for p in lines[2]["errors"]} == {"types[1]", "count", "priority"}
    # A check that needs the deployment's settings (its channels) is reported the same way.
    assert lines[3]["status"] == "invalid"
    assert lines[3]["errors"][0]["field"] == "channels"
    assert "ebay" in lines[3]["errors"][0]["message"]
    assert lines[4]["errors"] == [
        {"field": "line", "message": "has 1 cell(s) more than the header's columns"}
    ]
    assert resp.json()["invalid"] == 3 and resp.json()["accepted"] == 0


def test_a_file_that_is_not_a_jobs_csv_is_refused_whole(api: httpx.Client) -> None:
    bad = {
        "": "is empty",
        "theme,style\nx,y": "missing column(s): niche, types, count, priority, channels",
        HEADER + ",colour\n": "unknown column(s) 'colour'",
        HEADER + '\n"unclosed,': "line 2",
    }
    for text, message in bad.items():
        resp = post(api, text)
        assert resp.status_code == 400, (text, resp.text)
        assert resp.json()["error"] == "bad_csv"
        assert message in resp.json()["detail"][0]["message"], resp.text
    assert post(api, HEADER + "\n").json()["lines"] == []
    latin = api.post("/jobs/bulk", content=b"theme\xe9", headers=CSV)
    assert latin.status_code == 400 and "UTF-8" in latin.text
    # JSON routes stay JSON: text/csv is taken by this route only, a form by none.
    assert api.post("/jobs", content=b"a,b", headers=CSV).status_code == 415
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    assert api.post("/jobs/bulk", content=b"a=b", headers=form).status_code == 415


def test_past_the_row_limit_nothing_is_submitted(pipeline_topics: str, migrated_db: str) -> None:
    theme = unique("bulk limit")
    line = f"{theme},flat,owls,tshirt,1,low,"
    with serve(
        kafka_bootstrap_servers=pipeline_topics, database_url=migrated_db, bulk_max_rows=2
    ) as api:
        resp = post(api, "\n".join([HEADER, line, line, line]))
        assert resp.status_code == 422, resp.text
        assert resp.json()["detail"] == [
            {"field": "body", "message": "must have at most 2 job lines"}
        ]
        assert api.get("/submission-options").json()["bulkMaxRows"] == 2
    with psycopg.connect(migrated_db) as conn:
        row = conn.execute("SELECT count(*) FROM jobs WHERE theme = %s", (theme,)).fetchone()
    assert row == (0,)


def test_each_caller_has_its_own_lines(api_auth: httpx.Client) -> None:
    text = "\n".join([HEADER, f"{unique('bulk callers')},flat,owls,mug,1,normal,"])
    mine = post(api_auth, text, Authorization=f"Bearer {API_KEY}")
    theirs = post(api_auth, text, Authorization=f"Bearer {OTHER_KEY}")
    assert by_line(mine)[2]["status"] == by_line(theirs)[2]["status"] == "accepted"
    assert by_line(mine)[2]["jobId"] != by_line(theirs)[2]["jobId"]
    assert post(api_auth, text).status_code == 401


@contextmanager
def topic_limit(bootstrap: str, topic: str, max_bytes: int) -> Iterator[None]:
    """The broker refuses records larger than ``max_bytes`` on ``topic`` for the block."""
    admin = AdminClient({"bootstrap.servers": bootstrap})

    def alter(op: AlterConfigOpType, value: str | None) -> None:
        entry = ConfigEntry("max.message.bytes", value, incremental_operation=op)
        resource = ConfigResource(ResourceType.TOPIC, topic, incremental_configs=[entry])
        for future in admin.incremental_alter_configs([resource]).values():
            future.result(timeout=30)

    alter(AlterConfigOpType.SET, str(max_bytes))
    try:
        yield
    finally:
        alter(AlterConfigOpType.DELETE, None)


def test_a_broker_failure_mid_file_is_completed_by_sending_the_file_again(
    api: httpx.Client, pipeline_topics: str, migrated_db: str
) -> None:
    theme = unique("bulk broker")
    # Random text does not compress: its record stays larger than the topic's limit below.
    big = secrets.token_urlsafe(2900)
    rows = [
        f"{theme},flat,owls,tshirt,1,high,,one,,",
        f"{theme},flat,owls,tshirt,1,normal,,two,,",
        f"{theme},flat,owls,tshirt,1,low,,{big},,",  # the broker refuses this one
        f"{theme},flat,owls,tshirt,1,high,,four,,",
        f"{theme},flat,owls,tshirt,x,high,,five,,",  # invalid whatever the broker does
    ]
    text = "\n".join([HEADER, *rows])
    with topic_limit(pipeline_topics, JOBS_REQUESTED[Priority.LOW], 2500):
        stopped = post(api, text)
    assert stopped.status_code == 503, stopped.text
    assert stopped.headers["retry-after"] == "5"
    lines = by_line(stopped)
    assert [lines[n]["status"] for n in range(2, 7)] == [
        "accepted",
        "accepted",
        "not_submitted",
        "not_submitted",
        "invalid",
    ]
    assert "not submitted (retry" in lines[4]["errors"][0]["message"]
    assert stopped.json()["notSubmitted"] == 2

    done = post(api, text)
    assert done.status_code == 200, done.text
    again = by_line(done)
    assert [again[n]["status"] for n in range(2, 7)] == [
        "already_accepted",
        "already_accepted",
        "accepted",
        "accepted",
        "invalid",
    ]
    assert [again[n]["jobId"] for n in (2, 3)] == [lines[n]["jobId"] for n in (2, 3)]
    with psycopg.connect(migrated_db) as conn:
        row = conn.execute("SELECT count(*) FROM jobs WHERE theme = %s", (theme,)).fetchone()
    assert row == (4,)


def test_booleans_are_json_words_in_any_case(api: httpx.Client) -> None:
    theme = unique("bulk booleans")
    text = "\n".join(
        [
            "theme,style,niche,types,count,priority,channels,review,autoPublish",
            f"{theme},flat,owls,mug,1,normal,,FALSE,True",
            f"{theme},flat,owls,mug,1,normal,,yes,1",
        ]
    )
    lines = by_line(post(api, text))
    job = api.get(f"/jobs/{lines[2]['jobId']}").json()["job"]
    assert job["autoPublish"] is True and job["request"].get("review", False) is False
    assert sorted(lines[3]["errors"], key=str) == [
        {"field": "autoPublish", "message": "must be true or false"},
        {"field": "review", "message": "must be true or false"},
    ]
