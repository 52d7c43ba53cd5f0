"""What a hostile web page could make the operator's browser do to the API: DNS rebinding (a
foreign ``Host``), a cross-origin POST, a form or text body sent without a preflight."""

from __future__ import annotations

import json
import uuid

import httpx
import pytest

from services.api.guards import split_host
from shared.adapters.vendors.printify_webhooks import SIGNATURE_HEADER, sign
from tests.services.api.conftest import API_KEY, serve
from tests.services.api.test_api import job_body

# Routes of every kind: JSON reads, the dashboard, a live stream, an admin command, the docs.
READS = ["/jobs", "/ui/jobs", "/events", "/health", "/openapi.json", "/stats", "/ui/static/app.js"]
WRITES = [
    ("/jobs", job_body()),
    ("/scale", {"workerCount": 1}),
    ("/workers/generator-0/restart", None),
    ("/dlq/replay", {"stage": "printify"}),
]


def _port(client: httpx.Client) -> int:
    port = client.base_url.port
    assert port is not None
    return port


@pytest.mark.parametrize("host", ["evil.example", "evil.example:3000", "localhost.evil.example"])
def test_a_rebinding_host_is_refused_on_every_kind_of_route(api: httpx.Client, host: str) -> None:
    for path in READS:
        resp = api.get(path, headers={"Host": host})
        assert resp.status_code == 400, (path, resp.text)
        body = resp.json()
        assert body["error"] == "host_not_allowed"
        assert body["detail"][0]["field"] == "Host"
        assert "evil" not in resp.text  # the caller's text is not echoed
    for path, payload in WRITES:
        resp = api.post(path, json=payload, headers={"Host": host})
        assert resp.status_code == 400, (path, resp.text)


def test_localhost_and_ip_addresses_are_answered_without_keys(api: httpx.Client) -> None:
    port = _port(api)
    for host in (
        f"localhost:{port}",
        f"127.0.0.1:{port}",
        f"[::1]:{port}",
        "LOCALHOST",
        # A pod's address (Kubernetes probes): a rebinding page's origin is a name, never an IP.
        f"10.1.2.3:{port}",
    ):
        resp = api.get("/jobs", headers={"Host": host})
        assert resp.status_code == 200, (host, resp.text)
    assert (
        api.post("/jobs", json=job_body(), headers={"Host": f"localhost:{port}"}).status_code == 202
    )


def test_with_keys_and_hosts_configured_the_configured_names_work(
    pipeline_topics: str, migrated_db: str
) -> None:
    auth = {"Authorization": f"Bearer {API_KEY}"}
    with serve(
        kafka_bootstrap_servers=pipeline_topics,
        database_url=migrated_db,
        api_keys=API_KEY,
        api_allowed_hosts="pod.example.com, api.internal",
    ) as client:
        for host in ("pod.example.com", "POD.example.com:443", "api.internal:3000", "localhost"):
            resp = client.get("/jobs", headers={**auth, "Host": host})
            assert resp.status_code == 200, (host, resp.text)
        resp = client.get("/jobs", headers={**auth, "Host": "evil.example"})
        assert resp.status_code == 400 and resp.json()["error"] == "host_not_allowed"
        # Behind a proxy that rewrites Host, the page's own (configured) name may post.
        port = _port(client)
        behind = {**auth, "Host": f"127.0.0.1:{port}", "Origin": "https://pod.example.com"}
        assert client.post("/jobs", json=job_body(), headers=behind).status_code == 202
        foreign = {**behind, "Origin": "https://evil.example"}
        assert client.post("/jobs", json=job_body(), headers=foreign).status_code == 403
        # Refused before authentication: the page learns nothing from the answer either way.
        assert client.get("/jobs", headers={"Host": "evil.example"}).status_code == 400


def test_with_keys_and_no_hosts_configured_any_name_is_answered(
    api_auth: httpx.Client,
) -> None:
    auth = {"Authorization": f"Bearer {API_KEY}"}
    assert api_auth.get("/jobs", headers={**auth, "Host": "pod.example.com"}).status_code == 200


@pytest.mark.parametrize(
    "origin", ["http://evil.example", "null", "http://127.0.0.1:1", "https://localhost", "junk"]
)
def test_a_page_of_another_origin_cannot_change_anything(api: httpx.Client, origin: str) -> None:
    for path, payload in WRITES:
        resp = api.post(path, json=payload, headers={"Origin": origin})
        assert resp.status_code == 403, (path, resp.text)
        assert resp.json()["error"] == "origin_not_allowed"
        assert resp.json()["detail"][0]["field"] == "Origin"
    # Reading is not changing: a GET with any Origin is answered (CORS decides what a page sees).
    assert api.get("/jobs", headers={"Origin": origin}).status_code == 200


def test_the_apis_own_pages_may_post(api: httpx.Client) -> None:
    port = _port(api)
    for origin, host in (
        (f"http://127.0.0.1:{port}", f"127.0.0.1:{port}"),
        (f"http://localhost:{port}", f"localhost:{port}"),
    ):
        resp = api.post("/jobs", json=job_body(), headers={"Origin": origin, "Host": host})
        assert resp.status_code == 202, resp.text


def test_an_origin_in_cors_origins_may_post(pipeline_topics: str, migrated_db: str) -> None:
    with serve(
        kafka_bootstrap_servers=pipeline_topics,
        database_url=migrated_db,
        cors_origins="https://shop.example.com",
    ) as client:
        ok = client.post("/jobs", json=job_body(), headers={"Origin": "https://shop.example.com"})
        assert ok.status_code == 202, ok.text
        assert ok.headers["access-control-allow-origin"] == "https://shop.example.com"
        other = client.post("/jobs", json=job_body(), headers={"Origin": "https://evil.example"})
        assert other.status_code == 403


# The bodies a page can send cross-site without a preflight, and one with no type at all.
SIMPLE_BODIES = [
    ("application/x-www-form-urlencoded", b"theme=cats&count=1"),
    (
        "multipart/form-data; boundary=x",
        b'--x\r\nContent-Disposition: form-data; name="a"\r\n\r\n1\r\n--x--',
    ),
    ("text/plain", json.dumps(job_body()).encode()),
    ("text/plain;charset=UTF-8", json.dumps({"workerCount": 0}).encode()),
    (None, json.dumps(job_body()).encode()),
]


@pytest.mark.parametrize(("ctype", "raw"), SIMPLE_BODIES, ids=lambda v: str(v)[:20])
def test_form_and_text_bodies_are_415_on_every_state_changing_route(
    api: httpx.Client, ctype: str | None, raw: bytes
) -> None:
    headers = {} if ctype is None else {"Content-Type": ctype}
    for path, _ in WRITES:
        resp = api.post(path, content=raw, headers=headers)
        assert resp.status_code == 415, (path, resp.text)
        body = resp.json()
        assert body["error"] == "unsupported_media_type"
        assert body["detail"][0]["field"] == "Content-Type"
        assert "application/json" in body["detail"][0]["message"]


def test_json_bodies_and_bodiless_commands_get_through(api: httpx.Client) -> None:
    for ctype in ("application/json", "application/json; charset=utf-8"):
        resp = api.post("/jobs", content=json.dumps(job_body()), headers={"Content-Type": ctype})
        assert resp.status_code == 202, resp.text
    # A command without a body needs no type: past the guard (no pool manager here: not 415).
    assert api.post("/workers/generator-0/restart").status_code not in (400, 403, 415)


def test_the_guards_answers_are_in_the_openapi_document(api: httpx.Client) -> None:
    paths = api.get("/openapi.json").json()["paths"]
    assert {"400", "403", "415"} <= set(paths["/jobs"]["post"]["responses"])
    assert "400" in paths["/jobs"]["get"]["responses"]
    assert "415" not in paths["/jobs"]["get"]["responses"]


@pytest.mark.parametrize(
    ("raw", "parsed"),
    [
        ("Example.COM:8080", ("example.com", 8080)),
        ("[::1]:3000", ("::1", 3000)),
        ("[::1]", ("::1", None)),
        ("localhost", ("localhost", None)),
        ("a:b", None),
        ("a:0", None),
        ("[::1", None),
        ("user@evil", None),
        ("", None),
    ],
)
def test_host_headers_are_parsed_strictly(raw: str, parsed: tuple[str, int | None] | None) -> None:
    assert split_host(raw) == parsed


WEBHOOK_SECRET = "whsec-guards-3f1c9a7e5b"


def test_printifys_signed_calls_come_under_the_public_name_in_any_type(
    pipeline_topics: str, migrated_db: str
) -> None:
    """A webhook is registered at a public URL, so its calls carry that name as Host (no keys
    needed for it to be refused otherwise); its signature, not the browser rules, is its proof."""
    call = (
        f'{{"id":"guards-{uuid.uuid4().hex[:8]}","type":"product:publish:started",'
        '"created_at":"2026-11-29 10:00:00+00:00","resource":{"id":"p-guards",'
        '"type":"product","data":{"shop_id":12345678,"action":"create"}}}'
    ).encode()
    public = {"Host": "hooks.shop.example"}
    with serve(
        kafka_bootstrap_servers=pipeline_topics,
        database_url=migrated_db,
        printify_webhook_secret=WEBHOOK_SECRET,
    ) as api:
        for ctype in ("application/json", None, "text/plain"):
            headers = {**public, SIGNATURE_HEADER: sign(WEBHOOK_SECRET, call)}
            if ctype is not None:
                headers["Content-Type"] = ctype
            resp = api.post("/webhooks/printify", content=call, headers=headers)
            assert resp.status_code == 200, (ctype, resp.text)
        unsigned = api.post("/webhooks/printify", content=call, headers=public)
        assert unsigned.status_code == 401  # the signature still decides
        # Every other route still answers only to the allowed names.
        assert api.get("/jobs", headers=public).status_code == 400
