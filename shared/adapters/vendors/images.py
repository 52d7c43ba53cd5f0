"""Mockups fetched by URL for a channel that uploads them itself (Etsy's uploadListingImage,
TikTok's images/upload), and what kind of image some bytes are."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import httpx

from shared.platform.errors import (
    RetryableError,
    VendorTimeout,
    classify_http_status,
)
from shared.platform.http import async_client


class HttpImageFetcher:
    """Fetches a mockup by URL (Printify's image servers) for a channel's image upload."""

    def __init__(
        self,
        timeout_s: float = 30.0,
        *,
        retries: int = 2,
        backoff_s: float = 0.25,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.retries = retries
        self.backoff_s = backoff_s
        self._http = async_client(
            timeout=httpx.Timeout(timeout_s, connect=min(timeout_s, 10.0)),
            follow_redirects=True,
            transport=transport,
        )

    async def __call__(self, url: str) -> bytes:
        """The image's bytes; a server error, timeout or dropped connection is tried again
        (``retries`` times, backing off): a fetch changes nothing, and one failed fetch would
        otherwise cost the whole listing attempt its other calls."""
        for attempt in range(self.retries + 1):
            try:
                return await self._fetch(url)
            except RetryableError:
                if attempt == self.retries:
                    raise
                await asyncio.sleep(self.backoff_s * 2**attempt)
        raise AssertionError("unreachable")

    async def _fetch(self, url: str) -> bytes:
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


def image_type(data: bytes) -> tuple[str, str]:
    """File extension and MIME type of image bytes, by their signature."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png", "image/png"
    if data.startswith(b"GIF8"):
        return "gif", "image/gif"
    return "jpg", "image/jpeg"
