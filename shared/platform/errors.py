"""The one exception root of POD Engine.

Every failure a stage can meet is either *retryable* (worth another try after a delay: timeouts,
connection errors, 5xx, 429, 408) or *permanent* (another try gives the same answer: validation,
other 4xx, content the vendor rejects). The runner routes on that distinction alone, so vendor
clients map their vendor's errors onto these classes and keep the vendor's code and message.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from shared.platform.logs import redact_urls


class PodError(Exception):
    """Root of every error raised on purpose by POD Engine."""

    retryable: bool = False

    def __init__(
        self,
        message: str,
        *,
        vendor: str | None = None,
        status: int | None = None,
        code: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        # Messages reach logs, dead letters, job logs and the dashboard: no URL's credentials.
        message = redact_urls(message)
        super().__init__(message)
        self.message = message
        self.vendor = vendor
        self.status = status
        self.code = code
        # Seconds the vendor asked us to wait (Retry-After), when it said so.
        self.retry_after = retry_after

    @property
    def error_class(self) -> str:
        """Short name recorded in DLQ headers and job logs."""
        return type(self).__name__

    def describe(self) -> str:
        """One line for logs and DLQ headers: vendor, status, code and message."""
        status = str(self.status) if self.status else None
        parts = [p for p in (self.vendor, status, self.code) if p]
        prefix = f"[{' '.join(parts)}] " if parts else ""
        return f"{prefix}{self.message}"


class RetryableError(PodError):
    """A failure that may succeed on a later attempt."""

    retryable = True


class PermanentError(PodError):
    """A failure that will not succeed however often it is retried."""

    retryable = False


class InvalidEventError(PermanentError):
    """An input message that cannot be parsed or does not match the event contract."""


class ConfigError(PermanentError):
    """Invalid configuration: names the key and the problem."""


class VendorTimeout(RetryableError):
    """An external call that did not answer in time."""


class RateLimited(RetryableError):
    """The vendor said 429; ``retry_after`` holds its requested wait when given."""


def classify_http_status(status: int) -> type[PodError]:
    """Map an HTTP status from a vendor onto retryable or permanent.

    429 and 408 and every 5xx (including Anthropic's 529 "overloaded") are retryable;
    any other 4xx is permanent.
    """
    if status == 429:
        return RateLimited
    if status == 408 or status >= 500:
        return RetryableError
    return PermanentError


def parse_retry_after(
    raw: str | None, *, scale: float = 1.0, now: datetime | None = None
) -> float | None:
    """Seconds a vendor's ``Retry-After`` asks for: delta-seconds or an HTTP date (RFC 9110).

    Anything else is ignored (None): a vendor answer must never crash the caller, so ``inf``,
    ``nan``, negative numbers and garbage fall back to the caller's own backoff. ``scale``
    divides a number (1000 for ``retry-after-ms``).
    """
    if raw is None or not raw.strip():
        return None
    raw = raw.strip()
    try:
        seconds = float(raw) / scale
    except ValueError:
        try:
            when = parsedate_to_datetime(raw)
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
        return max(0.0, seconds)
    if not math.isfinite(seconds) or seconds < 0:
        return None
    return seconds
