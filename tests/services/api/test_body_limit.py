"""MAX_BODY_BYTES: an oversized body is refused with 413 before it is read, parsed or authorised."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from services.api import auth
from services.api.routes import jobs as jobs_routes
from services.api.settings import ApiSettings
from services.api.submit import submit_job
from tests.services.api.conftest import API_KEY, serve
from tests.services.api.test_api import job_body

LIMIT = 1024


@pytest.fixture(scope="module")
def small(pipeline_topics: str, migrated_db: str) -> Iterator[httpx.Client]:
    """The API with authentication on and a 1 KiB body limit."""
    with serve(
        kafka_bootstrap_servers=pipeline_topics,
        database_url=migrated_db,
        api_keys=API_KEY,
        max_body_bytes=LIMIT,
    ) as client:
        yield client


@pytest.fixture
def spies(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """Counts of key look-ups (authentication) and submissions (POST /jobs's handler)."""
    calls = {"auth": 0, "handler": 0}
    # The route calls the name it imported: that binding is replaced, the original is wrapped.
    lookup, submit = auth.KeyRing.lookup, submit_job

    def counting_lookup(self: auth.KeyRing, given: str) -> auth.Caller | None:
        calls["auth"] += 1
        return lookup(self, given)

    async def counting_submit(*args: Any, **kwargs: Any) -> str:
        calls["handler"] += 1
        return await submit(*args, **kwargs)

    monkeypatch.setattr(auth.KeyRing, "lookup", counting_lookup)
    monkeypatch.setattr(jobs_routes, "submit_job", counting_submit)
    return calls


def padded(size: int) -> bytes:
    """A valid job request of exactly ``size`` bytes (JSON allows trailing whitespace)."""
    raw = json.dumps(job_body()).encode()
    assert len(raw) <= size
    return raw + b" " * (size - len(raw))


def raw_exchange(client: httpx.Client, head: str, body: bytes = b"") -> tuple[int, dict[str, Any]]:
    """Send ``head`` (and ``body``) on a raw socket, read one response: (status, JSON body).

    Used where httpx would send the whole body first: these requests stop short on purpose.
    """
    host, port = client.base_url.host, client.base_url.port
    assert port is not None
    with socket.create_connection((host, port), timeout=10) as sock:
        sock.sendall(head.encode() + body)
        data = b""
        while b"\r\n\r\n" not in data or len(data.split(b"\r\n\r\n", 1)[1]) < _length(data):
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    status_line, rest = data.split(b"\r\n", 1)
    payload = rest.split(b"\r\n\r\n", 1)[1]
    return int(status_line.split()[1]), json.loads(payload[: _length(data)])


def _length(data: bytes) -> int:
    head = data.split(b"\r\n\r\n", 1)[0].lower()
    for line in head.split(b"\r\n"):
        if line.startswith(b"content-length:"):
            return int(line.split(b":", 1)[1])
    return 1 << 30


def test_default_limit_is_one_mib() -> None:
    assert ApiSettings().max_body_bytes == 1024 * 1024
    assert ApiSettings(max_body_bytes=4096).max_body_bytes == 4096


def test_declared_length_over_the_limit_is_413_before_the_body_is_sent(
    small: httpx.Client, spies: dict[str, int]
) -> None:
    # Only the headers go out: the answer cannot depend on a body the server never received,
    # and no key is sent, so a 413 (not a 401) shows authentication did not run either.
    head = (
        "POST /jobs HTTP/1.1\r\nHost: api\r\nContent-Type: application/json\r\n"
        f"Content-Length: {LIMIT + 1}\r\n\r\n"
    )
    status, body = raw_exchange(small, head)
    assert status == 413
    assert body["error"] == "too_large"
    assert str(LIMIT) in body["detail"]
    assert spies == {"auth": 0, "handler": 0}


def test_chunked_body_over_the_limit_is_413_while_it_streams(
    small: httpx.Client, spies: dict[str, int]
) -> None:
    # Three 512-byte chunks and no final chunk: the server must stop at the limit and answer
    # without waiting for an end that never comes (and without buffering past the limit).
    chunk = b"{" + b" " * 511
    head = (
        "POST /jobs HTTP/1.1\r\nHost: api\r\nContent-Type: application/json\r\n"
        f"Authorization: Bearer {API_KEY}\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    body = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(3))
    status, answer = raw_exchange(small, head, body)
    assert status == 413
    assert answer["error"] == "too_large"
    assert spies == {"auth": 0, "handler": 0}


def test_oversized_valid_job_is_not_accepted(small: httpx.Client, spies: dict[str, int]) -> None:
    auth_header = {"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"}
    content = padded(LIMIT + 1)
    theme = json.loads(content)["theme"]
    resp = small.post("/jobs", content=content, headers=auth_header)
    assert resp.status_code == 413, resp.text
    assert resp.json()["error"] == "too_large"
    # Chunked (no Content-Length): the same request, streamed.
    resp = small.post("/jobs", content=iter([content[:600], content[600:]]), headers=auth_header)
    assert resp.status_code == 413, resp.text
    assert spies == {"auth": 0, "handler": 0}
    listed = small.get("/jobs", params={"limit": 100}, headers=auth_header).json()["jobs"]
    assert theme not in {j["theme"] for j in listed}


def test_body_at_the_limit_goes_through(small: httpx.Client, spies: dict[str, int]) -> None:
    auth_header = {"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"}
    resp = small.post("/jobs", content=padded(LIMIT), headers=auth_header)
    assert resp.status_code == 202, resp.text
    # Streamed without a Content-Length, replayed to the app whole.
    content = padded(LIMIT)
    resp = small.post("/jobs", content=iter([content[:100], content[100:]]), headers=auth_header)
    assert resp.status_code == 202, resp.text
    assert spies == {"auth": 2, "handler": 2}
    # Without a key, a body within the limit reaches authentication (and stops there).
    resp = small.post("/jobs", content=padded(LIMIT), headers={"Content-Type": "application/json"})
    assert resp.status_code == 401


def test_limit_applies_to_every_route(small: httpx.Client) -> None:
    for method, path in (("GET", "/health"), ("POST", "/scale"), ("POST", "/dlq/replay")):
        resp = small.request(method, path, content=b"x" * (LIMIT + 1))
        assert resp.status_code == 413, (path, resp.text)
