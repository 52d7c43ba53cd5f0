"""Text the API accepts: no NUL characters, no lone surrogates, wherever it comes from.

PostgreSQL refuses NUL in ``text`` (a 500 when it reaches a query) and lone surrogates cannot be
encoded as UTF-8 (for PostgreSQL nor for a Kafka event): both must be turned away at the door
with a 4xx naming the field, not discovered by a query or a downstream stage. Two mechanisms,
one rule (:func:`text_problem`):

- :data:`SafeStr` for every string of a request body (the schemas build on it);
- :func:`reject_unsafe_params`, an app-wide dependency, for every path and query parameter,
  so a route added later is covered without remembering to.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated

from fastapi import Request
from pydantic import AfterValidator, BeforeValidator

from services.api.errors import ApiError


def text_problem(value: str) -> str | None:
    """Why ``value`` cannot be accepted as text, or None when it can."""
    if "\x00" in value:
        return "must not contain NUL (\\x00) characters"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "must be valid Unicode text (it holds a lone surrogate)"
    return None


def _check(value: str) -> str:
    problem = text_problem(value)
    if problem is not None:
        raise ValueError(problem)
    return value


SAFE_TEXT = AfterValidator(_check)
"""The rule as ``Annotated`` metadata, to add beside other constraints."""

SafeStr = Annotated[str, SAFE_TEXT]
"""A string without NUL characters or lone surrogates (a 422 naming the field otherwise)."""


def _printable_name(name: str) -> str:
    # A parameter's name may itself hold the NUL; show it escaped, never raw.
    return name.replace("\x00", "\\x00").encode("utf-8", "backslashreplace").decode()


async def reject_unsafe_params(request: Request) -> None:
    """422 for any path or query parameter (known to the route or not) that is not safe text."""
    problems: list[dict[str, str]] = []
    for name, value in request.path_params.items():
        problem = text_problem(value) if isinstance(value, str) else None
        if problem is not None:
            problems.append({"field": name, "message": problem})
    for name, value in request.query_params.multi_items():
        name_problem = text_problem(name)
        problem = f"its name {name_problem}" if name_problem else text_problem(value)
        if problem is not None:
            problems.append({"field": _printable_name(name), "message": problem})
    if problems:
        raise ApiError(422, "validation_failed", problems)


_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}")


def _iso_only(value: object) -> object:
    # pydantic reads a bare number as Unix time; the documented form is ISO 8601 only.
    if isinstance(value, str) and not _ISO_DATE.match(value):
        raise ValueError("must be an ISO 8601 date-time, e.g. 2026-01-31T12:00:00Z")
    return value


IsoDateTime = Annotated[datetime, BeforeValidator(_iso_only)]
"""A date-time given in ISO 8601 (a 422 for anything else, Unix numbers included)."""
