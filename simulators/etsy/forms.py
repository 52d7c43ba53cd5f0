"""Etsy's request bodies: form-encoded listing fields, multipart image uploads, and typed
access to their fields with Etsy's 400 for a bad value."""

from __future__ import annotations

import math
import urllib.parse

from fastapi import Request

from simulators.common.bodies import multipart_body
from simulators.etsy.errors import Invalid

__all__ = ["Fields", "form_body", "multipart_body"]


async def form_body(request: Request) -> dict[str, list[str]]:
    """An ``application/x-www-form-urlencoded`` body (Etsy's format for listing fields)."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != "application/x-www-form-urlencoded":
        raise Invalid("The request body must be application/x-www-form-urlencoded")
    raw = (await request.body()).decode("utf-8", errors="replace")
    return urllib.parse.parse_qs(raw, keep_blank_values=True)


class Fields:
    """Typed access to form fields, with Etsy's 400 for a bad value."""

    def __init__(self, raw: dict[str, list[str]]) -> None:
        self.raw = raw

    def has(self, name: str) -> bool:
        return name in self.raw or f"{name}[]" in self.raw

    def text(self, name: str) -> str | None:
        values = self.raw.get(name)
        return None if not values else values[-1]

    def required(self, name: str) -> str:
        value = self.text(name)
        if value is None:
            raise Invalid(f"Missing required parameter: {name}")
        return value

    def integer(self, name: str, *, low: int | None = None, high: int | None = None) -> int | None:
        value = self.text(name)
        if value is None or value == "":
            return None
        try:
            number = int(value)
        except ValueError:
            raise Invalid(f"{name} must be an integer, got {value!r}") from None
        if low is not None and number < low:
            raise Invalid(f"{name} must be at least {low}, got {number}")
        if high is not None and number > high:
            raise Invalid(f"{name} must be at most {high}, got {number}")
        return number

    def number(self, name: str) -> float | None:
        value = self.text(name)
        if value is None or value == "":
            return None
        try:
            number = float(value)
        except ValueError:
            raise Invalid(f"{name} must be a number, got {value!r}") from None
        if not math.isfinite(number):
            raise Invalid(f"{name} must be a finite number")
        return number

    def boolean(self, name: str) -> bool | None:
        value = self.text(name)
        if value is None or value == "":
            return None
        lowered = value.strip().lower()
        if lowered in ("true", "1"):
            return True
        if lowered in ("false", "0"):
            return False
        raise Invalid(f"{name} must be a boolean, got {value!r}")

    def choice(self, name: str, allowed: tuple[str, ...]) -> str | None:
        value = self.text(name)
        if value is None:
            return None
        if value not in allowed:
            raise Invalid(f"{name} must be one of {', '.join(allowed)}; got {value!r}")
        return value

    def strings(self, name: str) -> list[str] | None:
        """A list sent as repeated fields (``tags``, ``tags[]``) or comma-separated."""
        values = self.raw.get(name, []) + self.raw.get(f"{name}[]", [])
        if not values and not self.has(name):
            return None
        out = [item.strip() for value in values for item in value.split(",")]
        return [item for item in out if item]


def query_fields(request: Request) -> Fields:
    """The query string, read like a form."""
    return Fields({k: request.query_params.getlist(k) for k in request.query_params})
