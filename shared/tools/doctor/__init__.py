"""``pod doctor``: read-only preflight checks a seller runs before the first job.

Each part of a deployment has one module here with ``async def checks() -> list[Check]``: it
reads its settings from the environment the way the service that uses them does, asks the
vendor (or the broker, the database) only what can be asked without changing anything, and
says per check whether it passed, failed (with what to do) or did not apply (the part is not
configured). :data:`SOURCES` is the one list: ``pod doctor``, the API's ``GET /doctor`` and the
dashboard all run it through :func:`run`.

A check never carries a credential in its text: the vendor clients redact theirs, and
:func:`run` turns a source that crashed into a failed check naming the exception's class only.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Literal

from shared.contract.sales_channels import DIRECT_CHANNELS
from shared.platform.logs import redact_urls

logger = logging.getLogger(__name__)

Status = Literal["pass", "fail", "skip"]

# Every part's checks, in the order they are shown: the platform first, then the vendors in
# pipeline order, then each direct sales channel's, as registered (its module here bears the
# channel's name). Each names a module with ``async def checks() -> list[Check]``.
SOURCES: tuple[str, ...] = (
    "shared.tools.doctor.platform",
    "shared.tools.doctor.claude",
    "shared.tools.doctor.comfyui",
    "shared.tools.doctor.ocr",
    "shared.tools.doctor.screening",
    "shared.tools.doctor.storage",
    "shared.tools.doctor.printify",
    *(f"shared.tools.doctor.{channel}" for channel in DIRECT_CHANNELS),
)

# A source that has not answered in this long fails (a vendor that hangs is a finding too).
DEFAULT_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class Check:
    """One finding: ``name`` is ``<part>.<what>`` (``printify.shop``), ``detail`` what was
    found, ``fix`` what to do about a failure."""

    name: str
    status: Status
    detail: str
    fix: str | None = None

    # A detail may quote a configured URL (COMFYUI_API_URL, DATABASE_URL): never its password.
    @classmethod
    def passed(cls, name: str, detail: str) -> Check:
        return cls(name, "pass", redact_urls(detail))

    @classmethod
    def failed(cls, name: str, detail: str, fix: str) -> Check:
        return cls(name, "fail", redact_urls(detail), redact_urls(fix))

    @classmethod
    def skipped(cls, name: str, detail: str) -> Check:
        return cls(name, "skip", redact_urls(detail))

    @property
    def ok(self) -> bool:
        return self.status != "fail"

    def as_dict(self) -> dict[str, str | None]:
        return asdict(self)


CheckSource = Callable[[], Awaitable[list[Check]]]


def _source(path: str) -> CheckSource:
    module = importlib.import_module(path)
    checks: CheckSource = module.checks
    return checks


async def _run_one(path: str, timeout_s: float) -> list[Check]:
    part = path.rsplit(".", 1)[-1]
    started = time.monotonic()
    try:
        found = await asyncio.wait_for(_source(path)(), timeout_s)
    except TimeoutError:
        return [
            Check.failed(
                f"{part}.answered",
                f"no answer within {timeout_s:.0f}s",
                f"check that {part} is reachable from here (network, proxy, firewall)",
            )
        ]
    except Exception as exc:  # a check that crashed is a finding, never a crash of the doctor
        logger.exception("doctor source failed source=%s", path)
        return [
            Check.failed(
                f"{part}.ran",
                f"the check itself failed ({type(exc).__name__})",
                "see the log of this process for the traceback",
            )
        ]
    logger.info(
        "doctor source done source=%s checks=%d elapsed_ms=%.0f",
        path,
        len(found),
        (time.monotonic() - started) * 1000,
    )
    return found


async def run(
    sources: Sequence[str] = SOURCES, *, timeout_s: float = DEFAULT_TIMEOUT_S
) -> list[Check]:
    """Every source's checks, run concurrently, in the sources' order."""
    results = await asyncio.gather(*(_run_one(path, timeout_s) for path in sources))
    return [check for found in results for check in found]


def unless_selling_on(channel: str) -> list[Check] | None:
    """None when ``channel`` is among PUBLISH_CHANNELS (its checks apply); else the one check
    that says why they do not (or that PUBLISH_CHANNELS itself is wrong)."""
    from shared.contract.topics import ChannelSettings
    from shared.platform.errors import ConfigError
    from shared.platform.settings import load_settings

    try:
        channels = load_settings(ChannelSettings).publish_channels
    except ConfigError as exc:
        return [Check.failed(f"{channel}.settings", exc.message, "fix PUBLISH_CHANNELS")]
    if channel not in channels:
        return [Check.skipped(f"{channel}.configured", f"{channel} is not in PUBLISH_CHANNELS")]
    return None


def all_passed(checks: Sequence[Check]) -> bool:
    """True when nothing failed (skipped checks do not count against)."""
    return all(check.ok for check in checks)
