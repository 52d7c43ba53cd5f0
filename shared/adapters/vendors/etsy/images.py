"""Mockups fetched by URL for uploadListingImage."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import httpx

from shared.platform.errors import (
    RetryableError,
    VendorTimeout,
    classify_http_status,
)
from shared.platform.http import async_client


class HttpImageFetcher:
    """Fetches a mockup by URL (Printify's image servers) for uploadListingImage."""

    def __init__(self, timeout_s: float = 30.0) -> None:
        self._http = async_client(
            timeout=httpx.Timeout(timeout_s, connect=min(timeout_s, 10.0)), follow_redirects=True
        )

    async def __call__(self, url: str) -> bytes:
        try:
            resp = await self._http.get(url)
        except httpx.TimeoutException:
            raise VendorTimeout(f"GET {url}: timed out", vendor="printify") from None
        except httpx.TransportError as exc:
            raise RetryableError(f"GET {url}: {type(exc).__name__}", vendor="printify") from None
        if resp.status_code >= 400:
            cls = classify_http_status(resp.status_code)
            raise cls(
                f"GET {url}: HTTP {resp.status_code}", vendor="printify", status=resp.status_code
            )
        return resp.content

    async def aclose(self) -> None:
        await self._http.aclose()


ImageFetcher = Callable[[str], Awaitable[bytes]]
