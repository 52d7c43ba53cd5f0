"""Headless Chromium driven over the DevTools protocol (CDP), for the dashboard's tests.

No browser driver package: Chromium is started with a debugging port and spoken to over its
websocket with the ``websockets`` client the project already has. Console errors, uncaught
exceptions and failed loads are collected as they arrive, so a test can assert there were none.
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import re
import shutil
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from websockets.sync.client import ClientConnection, connect


def chromium_path() -> str | None:
    """The Chromium executable, None when it is not installed."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


class Page:
    """One browser tab."""

    def __init__(self, ws: ClientConnection, screenshots: Path) -> None:
        self.ws = ws
        self.screenshots = screenshots
        self.errors: list[str] = []
        self._ids = itertools.count(1)
        self._events: list[dict[str, Any]] = []
        for domain in ("Page", "Runtime", "Log"):
            self.call(f"{domain}.enable")

    def _note(self, message: dict[str, Any]) -> None:
        method, params = message.get("method"), message.get("params", {})
        if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            args = [a.get("value", a.get("description", "")) for a in params.get("args", [])]
            self.errors.append("console: " + " ".join(str(a) for a in args))
        elif method == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails", {})
            text = details.get("exception", {}).get("description") or details.get("text")
            self.errors.append(f"exception: {text}")
        elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
            entry = params["entry"]
            self.errors.append(f"log: {entry.get('text')} {entry.get('url', '')}".strip())
        self._events.append(message)

    def call(self, method: str, params: dict[str, Any] | None = None, timeout: float = 30) -> Any:
        """Send one command and return its result (events that arrive meanwhile are noted)."""
        call_id = next(self._ids)
        self.ws.send(json.dumps({"id": call_id, "method": method, "params": params or {}}))
        deadline = time.monotonic() + timeout
        while True:
            raw = self.ws.recv(timeout=max(0.1, deadline - time.monotonic()))
            message = json.loads(raw)
            if message.get("id") == call_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})
            self._note(message)

    def goto(self, url: str, timeout: float = 30) -> None:
        """Open ``url`` and wait for its load event."""
        self._events.clear()
        self.call("Page.navigate", {"url": url})
        deadline = time.monotonic() + timeout
        while not any(e.get("method") == "Page.loadEventFired" for e in self._events):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{url} did not load in {timeout}s")
            with contextlib.suppress(TimeoutError):
                self._note(json.loads(self.ws.recv(timeout=0.5)))

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (promises awaited)."""
        result = self.call(
            "Runtime.evaluate",
            {"expression": expression, "returnByValue": True, "awaitPromise": True},
        )
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails'].get('text')}")
        return result.get("result", {}).get("value")

    def wait_for(self, expression: str, timeout: float, what: str) -> Any:
        """Poll ``expression`` until it is truthy; its value. TimeoutError naming ``what``."""
        deadline = time.monotonic() + timeout
        while True:
            value = self.evaluate(expression)
            if value:
                return value
            if time.monotonic() > deadline:
                raise TimeoutError(f"{what}: not within {timeout}s")
            time.sleep(0.2)

    def screenshot(self, name: str) -> Path:
        """A PNG of the page, saved under the test output."""
        data = self.call("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True})
        path = self.screenshots / f"{re.sub(r'[^A-Za-z0-9_.-]', '_', name)}.png"
        path.write_bytes(base64.b64decode(data["data"]))
        return path


@contextlib.contextmanager
def chromium(executable: str, screenshots: Path) -> Iterator[Page]:
    """A headless Chromium with one tab; closed on exit."""
    screenshots.mkdir(parents=True, exist_ok=True)
    # Chromium's helpers may still write to the profile as it exits: never fail on its removal.
    with tempfile.TemporaryDirectory(prefix="pod-chromium-", ignore_cleanup_errors=True) as profile:
        proc = subprocess.Popen(
            [
                executable,
                "--headless=new",
                "--no-sandbox",  # root in CI containers
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-extensions",
                "--window-size=1280,900",
                "--remote-debugging-port=0",
                f"--user-data-dir={profile}",
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            port = _devtools_port(proc, Path(profile))
            targets = json.loads(
                urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10).read()
            )
            page = next(t for t in targets if t["type"] == "page")
            with connect(page["webSocketDebuggerUrl"], max_size=None, open_timeout=10) as ws:
                yield Page(ws, screenshots)
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()


def _devtools_port(proc: subprocess.Popen[str], profile: Path, timeout: float = 30) -> int:
    # Chromium writes the port it chose to DevToolsActivePort in its profile.
    marker = profile / "DevToolsActivePort"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"chromium exited: {proc.stderr.read() if proc.stderr else ''}")
        if marker.exists():
            first = marker.read_text().splitlines()
            if first and first[0].isdigit():
                return int(first[0])
        time.sleep(0.1)
    raise TimeoutError("chromium did not open its debugging port")
