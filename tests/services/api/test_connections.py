"""A connection must send its request's head in time (services/api/connections.py): one that
sends nothing, or dribbles a header (slowloris), is closed; a stream whose request is in is not."""

from __future__ import annotations

import socket
import time
from urllib.parse import urlsplit

from tests.services.api.conftest import serve_app

HEAD_TIMEOUT = 1.0


def _connect(base_url: str) -> socket.socket:
    url = urlsplit(base_url)
    return socket.create_connection((url.hostname or "127.0.0.1", url.port or 80), timeout=10)


def _closed_by_server(sock: socket.socket, within: float) -> float | None:
    """Seconds until the server closed ``sock`` (reading and dropping what it sends), or None
    if it was still open after ``within``."""
    start = time.monotonic()
    while (left := within - (time.monotonic() - start)) > 0:
        sock.settimeout(left)
        try:
            if sock.recv(65536) == b"":
                return time.monotonic() - start
        except TimeoutError:
            return None
        except ConnectionResetError:
            return time.monotonic() - start
    return None


def test_a_silent_or_dribbling_client_is_cut_off_and_a_stream_is_not(
    pipeline_topics: str, migrated_db: str
) -> None:
    with serve_app(
        kafka_bootstrap_servers=pipeline_topics,
        database_url=migrated_db,
        api_head_timeout_s=HEAD_TIMEOUT,
    ) as (client, _app):
        base = str(client.base_url)
        host = urlsplit(base).netloc

        # Connects and says nothing.
        silent = _connect(base)
        took = _closed_by_server(silent, within=HEAD_TIMEOUT + 5)
        assert took is not None, "a silent connection was never closed"
        silent.close()

        # Sends a header line every 0.3 s, for ever: the deadline counts from its first byte,
        # not from its last, so the dribble does not keep it alive.
        slow = _connect(base)
        slow.sendall(f"GET /health HTTP/1.1\r\nHost: {host}\r\n".encode())
        start = time.monotonic()
        cut_after: float | None = None
        for i in range(40):  # 12 s of dribbling at most
            try:
                slow.sendall(f"X-Slow-{i}: a\r\n".encode())
            except OSError:
                cut_after = time.monotonic() - start
                break
            if _closed_by_server(slow, within=0.3) is not None:
                cut_after = time.monotonic() - start
                break
        slow.close()
        assert cut_after is not None, "a dribbling client held its connection for 12 s"
        assert cut_after < HEAD_TIMEOUT + 4, cut_after

        # A stream whose request is in stays open past the deadline.
        stream = _connect(base)
        stream.sendall(
            f"GET /events HTTP/1.1\r\nHost: {host}\r\nAccept: text/event-stream\r\n\r\n".encode()
        )
        assert _closed_by_server(stream, within=HEAD_TIMEOUT * 3) is None
        stream.close()

        # Ordinary requests are untouched, on a kept-alive connection too.
        for _ in range(3):
            assert client.get("/health/live").status_code == 200
