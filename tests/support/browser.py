"""Headless Chromium for the dashboard's tests, driven by Playwright.

Playwright drives the SYSTEM Chromium (Debian's package, installed by scripts/bootstrap.sh)
through ``executable_path``: nothing is downloaded, and ~/.cache/ms-playwright is never read.
The wheel carries its own node driver, so the tests need only what PyPI installs. The pinned
Playwright release (pyproject) is the one built for the installed Chromium's major version.
"""

from __future__ import annotations

import logging
import re
import shutil
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path

from playwright.async_api import Browser, ConsoleMessage, Page, Playwright, ViewportSize

# What Chromium is started with, beyond Playwright's own headless flags: no sandbox (root in CI
# containers; Playwright's default too, said here so it does not depend on that), and no /dev/shm
# (small in containers) nor GPU.
log = logging.getLogger(__name__)

CHROMIUM_ARGS = ["--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"]
VIEWPORT: ViewportSize = {"width": 1280, "height": 900}


def chromium_path() -> str | None:
    """The system's Chromium executable, None when it is not installed."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


async def launch(playwright: Playwright, executable: str) -> Browser:
    """A headless Chromium from ``executable`` (never one of Playwright's downloads)."""
    browser = await playwright.chromium.launch(
        executable_path=executable, headless=True, args=CHROMIUM_ARGS
    )
    # Both versions in the log: a Chromium whose major version drifts from the one the pinned
    # Playwright was built for is the first suspect when these tests break after an upgrade.
    log.info(
        "browser launched executable=%s chromium=%s playwright=%s",
        executable,
        browser.version,
        version("playwright"),
    )
    return browser


@dataclass
class PageErrors:
    """Console errors, uncaught exceptions and failed loads of one page, as they arrive, so a
    test can assert there were none. Chromium's log errors (a resource answered 404, a load
    refused by the network) reach Playwright as console errors with the resource's URL."""

    errors: list[str] = field(default_factory=list)

    def watch(self, page: Page) -> None:
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.errors.append(f"exception: {error}"))

    def _console(self, message: ConsoleMessage) -> None:
        if message.type in ("error", "assert"):
            where = message.location.get("url", "")
            self.errors.append(f"console: {message.text} {where}".strip())


async def screenshot(page: Page, folder: Path, name: str) -> Path:
    """A PNG of the whole page, saved under ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{re.sub(r'[^A-Za-z0-9_.-]', '_', name)}.png"
    await page.screenshot(path=path, full_page=True)
    return path
