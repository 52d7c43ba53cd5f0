"""Shopify's API versions: a stable version each quarter, supported 12 months, the next
quarter's as release candidate, and ``unstable``."""

from __future__ import annotations

import re
from datetime import date
from typing import Any

QUARTERS = (1, 4, 7, 10)

_VERSION = re.compile(r"^(\d{4})-(01|04|07|10)$")


def _release(version: str) -> date:
    year, month = version.split("-")
    return date(int(year), int(month), 1)


def _version(day: date) -> str:
    return f"{day.year}-{day.month:02d}"


def _next(version: str) -> str:
    day = _release(version)
    return _version(date(day.year + (day.month == 10), day.month + 3 if day.month < 10 else 1, 1))


def _previous(version: str) -> str:
    day = _release(version)
    return _version(date(day.year - (day.month == 1), (day.month - 4) % 12 + 1, 1))


def supported_versions(today: date) -> list[str]:
    """The stable versions Shopify supports on ``today``, oldest first: each quarter's, for 12
    months from its release (Shopify's versioning page: "supported for a minimum of 12
    months", its 2023 example ending each on the same day a year later)."""
    out = [_version(date(today.year, max(m for m in QUARTERS if m <= today.month), 1))]
    while True:
        older = _previous(out[-1])
        release = _release(older)
        if today >= release.replace(year=release.year + 1):
            return out[::-1]
        out.append(older)


def served_version(requested: str, today: date) -> str | None:
    """The version Shopify answers a request for ``requested`` with: itself when supported, the
    release candidate or ``unstable``; the oldest supported one for an older stable version (it
    falls forward); None (404) for a version not released yet or not a version."""
    if requested == "unstable":
        return requested
    if not _VERSION.match(requested):
        return None
    stable = supported_versions(today)
    if requested in stable or requested == _next(stable[-1]):
        return requested
    if requested < stable[0]:
        return stable[0]
    return None


def public_api_versions(today: date) -> list[dict[str, Any]]:
    """``publicApiVersions``: the supported versions, the release candidate and unstable."""
    stable = supported_versions(today)
    candidate = _next(stable[-1])
    return [
        *({"handle": v, "displayName": v, "supported": True} for v in stable),
        {
            "handle": candidate,
            "displayName": f"{candidate} (Release candidate)",
            "supported": False,
        },
        {"handle": "unstable", "displayName": "unstable", "supported": False},
    ]
