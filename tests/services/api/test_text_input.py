"""NUL characters (and lone surrogates) are refused at the door with a 422 naming the field.

PostgreSQL cannot store NUL in text: before this check these URLs answered 500, and a NUL in
a job's fields was accepted (202) and broke the pipeline downstream.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx
import pytest

from services.api.text import text_problem
from tests.services.api.test_api import job_body, problems

NUL_MESSAGE = "must not contain NUL (\\x00) characters"


def b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


def assert_rejected(resp: httpx.Response, field: str, message: str = NUL_MESSAGE) -> None:
    assert resp.status_code == 422, resp.text
    assert resp.json()["error"] == "validation_failed"
    assert problems(resp).get(field) == message, resp.text


def test_the_three_urls_that_answered_500(api: httpx.Client) -> None:
    assert_rejected(api.get("/jobs/%00"), "job_id")
    assert_rejected(api.get("/dlq", params={"jobId": "\x00"}), "jobId")
    assert_rejected(api.post("/workers/%00/restart"), "instance_id")


@pytest.mark.parametrize(
    ("method", "url"),
    [
        ("GET", "/jobs/a%00b"),
        ("GET", "/jobs?cursor=%00"),
        ("GET", "/dlq?errorClass=Permanent%00Error"),
        ("GET", "/dlq?cursor=x%00"),
        ("GET", "/metrics?name=%00"),
        ("GET", "/alerts?since=%00"),
        ("POST", "/workers/w%00-1/restart"),
    ],
)
def test_nul_in_any_parameter(api: httpx.Client, method: str, url: str) -> None:
    resp = api.request(method, url)
    assert resp.status_code == 422, resp.text
    assert NUL_MESSAGE in problems(resp).values(), resp.text


def test_nul_in_a_parameter_the_route_does_not_know(api: httpx.Client) -> None:
    # Unknown parameters are ignored, but not when they carry a NUL: one rule for all.
    assert_rejected(api.get("/stats", params={"x": "a\x00"}), "x")
    resp = api.get("/stats", params={"a\x00": "1"})
    assert resp.status_code == 422
    assert problems(resp) == {"a\\x00": "its name " + NUL_MESSAGE}


@pytest.mark.parametrize("field", ["theme", "style", "niche", "prompt"])
def test_nul_in_a_job_field_is_not_accepted(api: httpx.Client, field: str) -> None:
    body = job_body(**{field: "leaves\x00and cats"})
    assert_rejected(api.post("/jobs", json=body), field)


def test_lone_surrogate_in_a_job_field(api: httpx.Client) -> None:
    # json.dumps escapes it as \ud800: valid JSON, but no UTF-8 can carry it to PostgreSQL.
    body = job_body(theme="cats \ud800")
    resp = api.post("/jobs", content=json.dumps(body), headers={"content-type": "application/json"})
    assert_rejected(resp, "theme", "must be valid Unicode text")


def test_nul_in_a_replay_request(api: httpx.Client) -> None:
    assert_rejected(api.post("/dlq/replay", json={"jobId": "job\x00"}), "jobId")


@pytest.mark.parametrize(
    "cursor",
    [
        b64({"t": "2026-01-01T00:00:00+00:00", "j": "job\x00"}),
        b64({"t": "2026-01-01T00:00:00+00:00", "j": "x" * 250}),
        b64({"t": "2026-01-01T00:00:00+00:00", "j": 7}),
        b64({"t": "2026-01-01T00:00:00", "j": "job"}),  # no time zone
        "%%%",
        "AAAA",
    ],
)
def test_tampered_job_cursors(api: httpx.Client, cursor: str) -> None:
    assert_rejected(
        api.get("/jobs", params={"cursor": cursor}), "cursor", "is not a valid page cursor"
    )


@pytest.mark.parametrize(
    "position",
    ["²", "١٢", "99999999999999999999999", "-1", "1\x00"],
)
def test_tampered_dead_letter_cursors(api: httpx.Client, position: str) -> None:
    # Unicode digits pass str.isdigit() but not int(); a number past bigint cannot name a row.
    cursor = b64({"t": "2026-01-01T00:00:00+00:00", "j": position})
    assert_rejected(
        api.get("/dlq", params={"cursor": cursor}), "cursor", "is not a valid page cursor"
    )


def test_replay_id_past_bigint(api: httpx.Client) -> None:
    resp = api.post("/dlq/replay", json={"id": 2**63})
    assert resp.status_code == 422
    assert "id" in problems(resp)


def test_text_rule() -> None:
    assert text_problem("plain text, émoji 🐈, tabs\tand\nnewlines") is None
    assert text_problem("\x00") == NUL_MESSAGE
    assert text_problem("\udfff") is not None
