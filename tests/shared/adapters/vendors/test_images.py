"""Mockups fetched for a channel's own image upload (Etsy, TikTok): a server error or a dropped
connection is fetched again, a refusal is not."""

from __future__ import annotations

import httpx
import pytest

from shared.adapters.vendors.images import HttpImageFetcher, image_type
from shared.platform.errors import PermanentError, RetryableError
from tests.support.printify import png


class Answers(httpx.AsyncBaseTransport):
    """Answers the statuses given in turn (then 200 with an image); counts the fetches."""

    def __init__(self, *statuses: int) -> None:
        self.statuses = list(statuses)
        self.fetches = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.fetches += 1
        if self.statuses:
            status = self.statuses.pop(0)
            if status == 0:
                raise httpx.ConnectError("connection reset", request=request)
            return httpx.Response(status)
        return httpx.Response(200, content=png(8, 8))


async def test_a_server_error_or_a_dropped_connection_is_fetched_again() -> None:
    answers = Answers(502, 0)
    fetch = HttpImageFetcher(retries=2, backoff_s=0.001, transport=answers)
    data = await fetch("https://images.example/mockup.png")
    assert image_type(data) == ("png", "image/png")
    assert answers.fetches == 3
    await fetch.aclose()


async def test_the_last_server_error_is_raised_when_retries_run_out() -> None:
    answers = Answers(503, 503, 503)
    fetch = HttpImageFetcher(retries=2, backoff_s=0.001, transport=answers)
    with pytest.raises(RetryableError, match="HTTP 503"):
        await fetch("https://images.example/mockup.png")
    assert answers.fetches == 3
    await fetch.aclose()


async def test_a_refusal_is_not_fetched_again() -> None:
    answers = Answers(404)
    fetch = HttpImageFetcher(retries=2, backoff_s=0.001, transport=answers)
    with pytest.raises(PermanentError, match="HTTP 404"):
        await fetch("https://images.example/gone.png")
    assert answers.fetches == 1
    await fetch.aclose()
