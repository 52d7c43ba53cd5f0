"""QuietServer: serves like uvicorn, keeps the Date header current, stops on SIGTERM."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time
from email.utils import parsedate_to_datetime

import httpx

from devstack.launch.ports import free_port

APP = textwrap.dedent(
    """
    import sys
    import uvicorn
    from fastapi import FastAPI
    from shared.platform.httpserver import QuietServer

    app = FastAPI()

    @app.get("/ping")
    def ping() -> dict[str, str]:
        return {"pong": "yes"}

    config = uvicorn.Config(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
    QuietServer(config).run()
    """
)


def _get(url: str, deadline: float) -> httpx.Response:
    while True:
        try:
            return httpx.get(url, timeout=2)
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def test_serves_with_a_current_date_and_stops_on_sigterm() -> None:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-c", APP, str(port)])
    try:
        url = f"http://127.0.0.1:{port}/ping"
        first = _get(url, time.monotonic() + 30)
        assert first.json() == {"pong": "yes"}
        first_date = parsedate_to_datetime(first.headers["date"])
        # The header is refreshed by the slower tick: it must still move on.
        deadline = time.monotonic() + 10
        while True:
            later = parsedate_to_datetime(_get(url, deadline).headers["date"])
            if later > first_date:
                break
            assert time.monotonic() < deadline, "the Date header never moved on"
            time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        # uvicorn re-raises the signal once it has stopped (the API turns that into exit 0).
        assert proc.wait(timeout=20) == -signal.SIGTERM
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
