"""The HTTP API against a real broker and database, over real HTTP."""

from __future__ import annotations

import base64
import logging
import uuid
from typing import Any

import httpx
import psycopg
import pytest
from confluent_kafka import Consumer, Message, TopicPartition
from pydantic import ValidationError

from services.api.schemas.jobs import JobRequest
from services.api.settings import ApiSettings
from services.api.submit import _IDEMPOTENCY_NS, request_hash
from shared.contract.events import JobRequested, Priority, parse_event
from shared.contract.topics import JOBS_REQUESTED
from tests.services.api.conftest import API_KEY, OTHER_KEY, serve
from tests.support.infra import free_port, read_topic, unique


def job_body(**changes: Any) -> dict[str, Any]:
    """A valid request with a theme no other test uses."""
    body: dict[str, Any] = {
        "theme": unique("autumn cats"),
        "style": "watercolor",
        "niche": "cat moms",
        "prompt": "a cat in a pile of leaves",
        "productTypes": ["tshirt", "hoodie"],
        "count": 3,
        "autoPublish": True,
        "priority": "high",
    }
    body.update(changes)
    return {k: v for k, v in body.items() if v is not ...}


def messages_for(bootstrap: str, topic: str, job_id: str) -> list[Message]:
    """Every message on ``topic`` keyed by ``job_id`` (the topic is read to its end)."""
    probe = Consumer({"bootstrap.servers": bootstrap, "group.id": unique("probe")})
    try:
        partitions = probe.list_topics(topic, timeout=10).topics[topic].partitions
        total = 0
        for p in partitions:
            low, high = probe.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            total += high - low
    finally:
        probe.close()
    everything = read_topic(bootstrap, topic, until=lambda msgs: len(msgs) >= total)
    return [m for m in everything if m.key() == job_id.encode()]


def one_event(bootstrap: str, topic: str, job_id: str) -> JobRequested:
    found = read_topic(
        bootstrap, topic, until=lambda msgs: any(m.key() == job_id.encode() for m in msgs)
    )
    event = parse_event(next(m for m in found if m.key() == job_id.encode()).value())
    assert isinstance(event, JobRequested)
    return event


def problems(resp: httpx.Response) -> dict[str, str]:
    """field -> message of a validation answer."""
    return {p["field"]: p["message"] for p in resp.json()["detail"]}


# ----------------------------------------------------------------------------- submit + read


@pytest.mark.parametrize("priority", ["high", "low", None])
def test_accepted_job_is_on_its_priority_topic_and_readable_at_once(
    api: httpx.Client, pipeline_topics: str, priority: str | None
) -> None:
    body = job_body(priority=priority if priority else ...)
    resp = api.post("/jobs", json=body)
    assert resp.status_code == 202, resp.text
    assert resp.json()["status"] == "accepted"
    job_id = resp.json()["jobId"]
    uuid.UUID(job_id)

    # Readable immediately: the row is written before the 202.
    got = api.get(f"/jobs/{job_id}")
    assert got.status_code == 200, got.text
    detail = got.json()
    job = detail["job"]
    assert job["jobId"] == job_id
    assert job["status"] == "queued"
    assert job["priority"] == job["band"] == (priority or "normal")
    assert (job["theme"], job["style"], job["niche"]) == (body["theme"], "watercolor", "cat moms")
    assert job["prompt"] == "a cat in a pile of leaves"
    assert job["productTypes"] == ["tshirt", "hoodie"]
    assert job["count"] == 3
    assert job["autoPublish"] is True
    assert job["expectedProducts"] == 6 and job["expectedPublications"] == 6
    assert job["createdAt"] and job["updatedAt"] and job["finishedAt"] is None
    assert detail["images"] == [] and detail["products"] == [] and detail["logs"] == []

    event = one_event(pipeline_topics, JOBS_REQUESTED[Priority(priority or "normal")], job_id)
    assert event.job_id == job_id and event.producer == "api"
    p = event.payload
    assert (p.theme, p.style, p.niche, p.prompt) == (
        body["theme"],
        "watercolor",
        "cat moms",
        "a cat in a pile of leaves",
    )
    assert [t.value for t in p.product_types] == ["tshirt", "hoodie"]
    assert p.count == 3 and p.auto_publish is True
    assert p.priority == Priority(priority or "normal")


def test_strings_are_trimmed_and_defaults_apply(api: httpx.Client) -> None:
    theme = unique("trim")
    body = job_body(theme=f"  {theme}  ", prompt=..., autoPublish=..., priority=...)
    resp = api.post("/jobs", json=body)
    assert resp.status_code == 202, resp.text
    job = api.get(f"/jobs/{resp.json()['jobId']}").json()["job"]
    assert job["theme"] == theme
    assert job["prompt"] is None and job["autoPublish"] is False
    assert job["priority"] == "normal" and job["expectedPublications"] == 0


@pytest.mark.parametrize(
    ("level", "band"),
    [(10, "high"), (8, "high"), (7, "normal"), (4, "normal"), (3, "low"), (1, "low")],
)
def test_a_numeric_priority_picks_its_band_and_is_shown_as_given(
    api: httpx.Client, pipeline_topics: str, level: int, band: str
) -> None:
    # The seed's clients send 1-10, higher more urgent: >= 8 high, <= 3 low by default.
    resp = api.post("/jobs", json=job_body(priority=level))
    assert resp.status_code == 202, resp.text
    job_id = resp.json()["jobId"]
    job = api.get(f"/jobs/{job_id}").json()["job"]
    assert (job["priority"], job["band"]) == (level, band)
    event = one_event(pipeline_topics, JOBS_REQUESTED[Priority(band)], job_id)
    assert (event.payload.priority, event.payload.priority_level) == (Priority(band), level)
    assert event.payload.rank == level


def test_the_band_rule_is_a_setting() -> None:
    settings = ApiSettings(priority_high_min=6, priority_low_max=1)
    assert [settings.band_for(n) for n in (6, 5, 2, 1)] == ["high", "normal", "normal", "low"]
    with pytest.raises(ValidationError, match="must be below priority_high_min"):
        ApiSettings(priority_high_min=5, priority_low_max=5)


def test_unknown_job_is_404(api: httpx.Client) -> None:
    resp = api.get(f"/jobs/{uuid.uuid4()}")
    assert resp.status_code == 404
    assert resp.json()["error"] == "not_found" and "not found" in resp.json()["detail"]


# ----------------------------------------------------------------------------- bad input

BAD_BODIES = [
    ("unknown product type", {"productTypes": ["tshirt", "poster"]}, "productTypes[1]", "one of"),
    ("count zero", {"count": 0}, "count", "at least 1"),
    ("count above max", {"count": 51}, "count", "at most 50"),
    ("count far above max", {"count": 10**30}, "count", "at most 50"),
    ("count as string", {"count": "5"}, "count", "integer"),
    ("count as float", {"count": 2.5}, "count", "integer"),
    ("count as bool", {"count": True}, "count", "integer"),
    ("autoPublish as string", {"autoPublish": "yes"}, "autoPublish", "true or false"),
    ("productTypes as string", {"productTypes": "tshirt"}, "productTypes", "list"),
    ("productTypes empty", {"productTypes": []}, "productTypes", "at least 1"),
    ("productTypes repeated", {"productTypes": ["mug", "mug"]}, "productTypes", "twice"),
    ("theme as number", {"theme": 42}, "theme", "string"),
    ("theme blank", {"theme": "   "}, "theme", "empty"),
    ("theme too long", {"theme": "x" * 201}, "theme", "at most 200"),
    ("missing theme", {"theme": ...}, "theme", "required"),
    ("unknown priority", {"priority": "urgent"}, "priority", "one of"),
    ("priority above 10", {"priority": 11}, "priority", "a number 1-10"),
    ("priority zero", {"priority": 0}, "priority", "a number 1-10"),
    ("priority as string number", {"priority": "10"}, "priority", "a number 1-10"),
    ("priority as float", {"priority": 9.5}, "priority", "a number 1-10"),
    ("priority as bool", {"priority": True}, "priority", "a number 1-10"),
    ("unknown field", {"color": "red"}, "color", "unknown field"),
    ("snake_case name", {"product_types": ["mug"]}, "product_types", "unknown field"),
]


@pytest.mark.parametrize(
    ("changes", "field", "says"),
    [case[1:] for case in BAD_BODIES],
    ids=[case[0] for case in BAD_BODIES],
)
def test_bad_body_is_422_naming_the_field(
    api: httpx.Client, changes: dict[str, Any], field: str, says: str
) -> None:
    resp = api.post("/jobs", json=job_body(**changes))
    assert resp.status_code == 422, resp.text
    assert resp.json()["error"] == "validation_failed"
    found = problems(resp)
    assert field in found, found
    assert says in found[field], found


def test_every_bad_field_is_reported_at_once(api: httpx.Client) -> None:
    resp = api.post("/jobs", json=job_body(theme=..., count=0, productTypes=["poster"], x=1))
    assert resp.status_code == 422
    assert set(problems(resp)) == {"theme", "count", "productTypes[0]", "x"}


RAW_BODIES = [
    ("malformed JSON", b'{"theme": "cats", ', "application/json", 400, "malformed JSON"),
    ("not JSON at all", b"theme=cats", "application/json", 400, "malformed JSON"),
    ("JSON array", b'["tshirt"]', "application/json", 422, "JSON object"),
    ("JSON string", b'"hello"', "application/json", 422, "JSON object"),
    ("JSON null", b"null", "application/json", 422, "JSON object"),
    ("empty body", b"", "application/json", 422, "required"),
]


@pytest.mark.parametrize(
    ("raw", "ctype", "status", "says"),
    [case[1:] for case in RAW_BODIES],
    ids=[case[0] for case in RAW_BODIES],
)
def test_unparseable_body_is_4xx_naming_the_body(
    api: httpx.Client, raw: bytes, ctype: str, status: int, says: str
) -> None:
    resp = api.post("/jobs", content=raw, headers={"Content-Type": ctype})
    assert resp.status_code == status, resp.text
    found = problems(resp)
    assert "body" in found and says in found["body"], found


# ----------------------------------------------------------------------------- idempotency


def test_idempotency_key_repeats_the_same_job_once(api: httpx.Client, pipeline_topics: str) -> None:
    key = unique("idem")
    body = job_body(priority="low")
    first = api.post("/jobs", json=body, headers={"Idempotency-Key": key})
    # The same request with its fields in another order is the same request.
    reordered = dict(reversed(list(body.items())))
    second = api.post("/jobs", json=reordered, headers={"Idempotency-Key": key})
    assert first.status_code == second.status_code == 202, (first.text, second.text)
    job_id = first.json()["jobId"]
    assert second.json()["jobId"] == job_id

    found = messages_for(pipeline_topics, JOBS_REQUESTED[Priority.LOW], job_id)
    assert len(found) == 1, f"{len(found)} events for one idempotent job"
    event = parse_event(found[0].value())
    assert event.event_id == uuid.uuid5(_IDEMPOTENCY_NS, key)

    other = api.post("/jobs", json=job_body(priority="low"), headers={"Idempotency-Key": key})
    assert other.status_code == 422, other.text
    assert "reused with a different request" in problems(other)["Idempotency-Key"]


def test_idempotency_key_left_unproduced_is_produced_again(
    api: httpx.Client, pipeline_topics: str, migrated_db: str
) -> None:
    # A crash between claiming the key and the broker's ack leaves produced = false.
    key = unique("crashed")
    body = job_body(priority="low")
    job_id = str(uuid.uuid4())
    with psycopg.connect(migrated_db, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO api_idempotency (key, request_hash, job_id) VALUES (%s, %s, %s)",
            (key, request_hash(JobRequest.model_validate(body)), job_id),
        )
    resp = api.post("/jobs", json=body, headers={"Idempotency-Key": key})
    assert resp.status_code == 202, resp.text
    assert resp.json()["jobId"] == job_id

    event = one_event(pipeline_topics, JOBS_REQUESTED[Priority.LOW], job_id)
    assert event.event_id == uuid.uuid5(_IDEMPOTENCY_NS, key)
    assert api.get(f"/jobs/{job_id}").json()["job"]["status"] == "queued"
    with psycopg.connect(migrated_db, autocommit=True) as conn:
        row = conn.execute("SELECT produced FROM api_idempotency WHERE key = %s", (key,)).fetchone()
    assert row == (True,)


@pytest.mark.parametrize("key", ["", "x" * 201, "caf\u00e9"])
def test_bad_idempotency_key_is_422(api: httpx.Client, key: str) -> None:
    resp = api.post("/jobs", json=job_body(), headers={b"Idempotency-Key": key.encode()})
    assert resp.status_code == 422, resp.text
    assert "Idempotency-Key" in problems(resp)


# ----------------------------------------------------------------------------- listing


def test_list_pages_through_newest_first_without_gaps(api: httpx.Client) -> None:
    mine = []
    for _ in range(5):
        resp = api.post("/jobs", json=job_body(priority="low"))
        assert resp.status_code == 202, resp.text
        mine.append(resp.json()["jobId"])

    seen: list[dict[str, Any]] = []
    cursor = None
    pages = 0
    while not set(mine) <= {j["jobId"] for j in seen}:
        params: dict[str, Any] = {"limit": 2}
        if cursor:
            params["cursor"] = cursor
        resp = api.get("/jobs", params=params)
        assert resp.status_code == 200, resp.text
        page = resp.json()
        assert 1 <= len(page["jobs"]) <= 2
        seen += page["jobs"]
        pages += 1
        cursor = page["nextCursor"]
        assert cursor or set(mine) <= {j["jobId"] for j in seen}, "last page before my jobs"
    ids = [j["jobId"] for j in seen]
    assert len(ids) == len(set(ids)), "a job appeared on two pages"
    keys = [(j["createdAt"], j["jobId"]) for j in seen]
    assert keys == sorted(keys, reverse=True), "not newest first"
    assert [i for i in ids if i in mine] == list(reversed(mine))
    assert pages >= 3


def test_list_filters_by_status(api: httpx.Client) -> None:
    job_id = api.post("/jobs", json=job_body()).json()["jobId"]
    queued = api.get("/jobs", params={"status": "queued", "limit": 100}).json()["jobs"]
    assert job_id in {j["jobId"] for j in queued}
    assert all(j["status"] == "queued" for j in queued)
    done = api.get("/jobs", params={"status": "completed", "limit": 100}).json()["jobs"]
    assert job_id not in {j["jobId"] for j in done}
    assert all(j["status"] == "completed" for j in done)


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode()


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"cursor": "not a cursor!"}, "cursor"),
        ({"cursor": _b64(b'{"t": "yesterday", "j": "x"}')}, "cursor"),
        ({"cursor": _b64(b'{"j": "x"}')}, "cursor"),
        ({"cursor": _b64(b"[1, 2]")}, "cursor"),
        ({"limit": 0}, "limit"),
        ({"limit": 101}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"status": "lost"}, "status"),
    ],
)
def test_bad_list_parameters_are_422(api: httpx.Client, params: dict[str, Any], field: str) -> None:
    resp = api.get("/jobs", params=params)
    assert resp.status_code == 422, resp.text
    assert field in problems(resp)


# ----------------------------------------------------------------------------- health


def test_health_reports_both_dependencies(api: httpx.Client) -> None:
    resp = api.get("/health")
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["status"] == "healthy" and body["checks"] == {"kafka": "ok", "database": "ok"}
    assert body["healthy"] is True  # the seed's name


def test_openapi_describes_the_job_request(api: httpx.Client) -> None:
    spec = api.get("/openapi.json").json()
    schema = spec["components"]["schemas"]["JobRequest"]
    assert {"theme", "productTypes", "count", "autoPublish"} <= set(schema["properties"])
    assert schema["additionalProperties"] is False
    assert "/jobs" in spec["paths"] and "/health" in spec["paths"]
    assert api.get("/docs").status_code == 200


def test_kafka_down_is_503_and_nothing_is_accepted(migrated_db: str) -> None:
    with serve(
        kafka_bootstrap_servers=f"127.0.0.1:{free_port()}",
        database_url=migrated_db,
        produce_timeout_s=1,
        health_timeout_s=1,
        shutdown_flush_s=0,
    ) as down:
        body = job_body()
        resp = down.post("/jobs", json=body)
        assert resp.status_code == 503, resp.text
        assert resp.json()["error"] == "kafka_unavailable"
        assert "not accepted" in resp.json()["detail"]
        listed = down.get("/jobs", params={"limit": 100}).json()["jobs"]
        assert body["theme"] not in {j["theme"] for j in listed}

        health = down.get("/health")
        assert health.status_code == 503
        checks = health.json()["checks"]
        assert health.json()["status"] == "unhealthy"
        assert checks["database"] == "ok" and checks["kafka"] != "ok"
        assert health.json()["healthy"] is False
        assert "postgresql://" not in health.text

        # The probes: alive (nothing to restart), not ready (no jobs can be accepted).
        assert down.get("/health/live").status_code == 200
        ready = down.get("/health/ready")
        assert ready.status_code == 503 and ready.json()["status"] == "unavailable"
        assert ready.json()["checks"]["kafka"] != "ok"


def test_probes_when_everything_is_up(api: httpx.Client) -> None:
    live = api.get("/health/live")
    assert live.status_code == 200 and live.json() == {"status": "ok", "checks": {}}
    ready = api.get("/health/ready")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ok", "checks": {"kafka": "ok", "database": "ok"}}


def test_cors_is_off_unless_origins_are_configured(
    api: httpx.Client, pipeline_topics: str, migrated_db: str
) -> None:
    origin = {"Origin": "https://studio.example"}
    preflight = {**origin, "Access-Control-Request-Method": "POST"}
    plain = api.get("/health/live", headers=origin)
    assert "access-control-allow-origin" not in plain.headers
    with serve(
        kafka_bootstrap_servers=pipeline_topics,
        database_url=migrated_db,
        cors_origins="https://studio.example, https://admin.example",
    ) as cors:
        ok = cors.options("/jobs", headers=preflight)
        assert ok.status_code == 200
        assert ok.headers["access-control-allow-origin"] == "https://studio.example"
        assert "POST" in ok.headers["access-control-allow-methods"]
        got = cors.get("/health/live", headers=origin)
        assert got.headers["access-control-allow-origin"] == "https://studio.example"
        # Another origin gets no grant.
        other = cors.options("/jobs", headers={**preflight, "Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in other.headers


# ----------------------------------------------------------------------------- auth


def test_auth_requires_a_configured_bearer_key(
    api_auth: httpx.Client, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    answers: list[httpx.Response] = []

    for headers in (
        {},
        {"Authorization": "Bearer wrong-key"},
        {"Authorization": f"Bearer {API_KEY}x"},
        {"Authorization": f"Basic {API_KEY}"},
        {"Authorization": API_KEY},
    ):
        for method, path in (("POST", "/jobs"), ("GET", "/jobs"), ("GET", f"/jobs/{uuid.uuid4()}")):
            resp = api_auth.request(method, path, json=job_body(), headers=headers)
            answers.append(resp)
            assert resp.status_code == 401, (headers, path, resp.text)
            assert resp.json()["error"] == "unauthorized"
            assert "Bearer" in resp.json()["detail"]
            assert resp.headers["WWW-Authenticate"] == "Bearer"

    for key in (API_KEY, OTHER_KEY):
        auth = {"Authorization": f"Bearer {key}"}
        resp = api_auth.post("/jobs", json=job_body(), headers=auth)
        answers.append(resp)
        assert resp.status_code == 202, resp.text
        got = api_auth.get(f"/jobs/{resp.json()['jobId']}", headers=auth)
        answers.append(got)
        assert got.status_code == 200
        listed = api_auth.get("/jobs", headers=auth)
        answers.append(listed)
        assert listed.status_code == 200

    health = api_auth.get("/health")
    answers.append(health)
    assert health.status_code == 200

    for resp in answers:
        assert API_KEY not in resp.text and OTHER_KEY not in resp.text
    assert API_KEY not in caplog.text and OTHER_KEY not in caplog.text


def test_idempotency_keys_are_scoped_per_api_key(api_auth: httpx.Client) -> None:
    key = unique("shared-key")
    a = api_auth.post(
        "/jobs",
        json=job_body(),
        headers={"Authorization": f"Bearer {API_KEY}", "Idempotency-Key": key},
    )
    b = api_auth.post(
        "/jobs",
        json=job_body(),
        headers={"Authorization": f"Bearer {OTHER_KEY}", "Idempotency-Key": key},
    )
    assert a.status_code == b.status_code == 202, (a.text, b.text)
    assert a.json()["jobId"] != b.json()["jobId"]
