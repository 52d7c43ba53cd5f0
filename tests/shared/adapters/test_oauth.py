"""The token endpoint both vendor grants call: what each answer means, and no credential in
any text."""

from __future__ import annotations

import json

import httpx
import pytest

from shared.adapters.credentials import GrantRevoked
from shared.adapters.oauth import Redactor, TokenEndpoint
from shared.platform.errors import PermanentError, RateLimited, RetryableError, VendorTimeout

SECRET = "client-secret-7f3a"
REFRESH = "1234.refresh-9c2e"


def endpoint(handler: httpx.MockTransport, **kwargs: object) -> TokenEndpoint:
    return TokenEndpoint(
        "https://vendor.example/oauth/token",
        vendor="vendor",
        what="the vendor's token endpoint",
        revoked_hint="authorise again",
        redact=Redactor(SECRET),
        transport=handler,
        **kwargs,  # type: ignore[arg-type]
    )


def answering(
    status: int, body: object, headers: dict[str, str] | None = None
) -> httpx.MockTransport:
    def handle(request: httpx.Request) -> httpx.Response:
        form = dict(pair.split("=", 1) for pair in request.content.decode().split("&"))
        assert request.headers["content-type"] == "application/x-www-form-urlencoded"
        assert form["grant_type"] == "refresh_token"
        text = body if isinstance(body, str) else json.dumps(body)
        return httpx.Response(status, text=text, headers=headers or {})

    return httpx.MockTransport(handle)


FORM = {"grant_type": "refresh_token", "refresh_token": REFRESH, "client_secret": SECRET}


async def test_an_answer_gives_the_new_tokens() -> None:
    body = {"access_token": "1234.new", "expires_in": 3600, "refresh_token": "1234.next"}
    answer = await endpoint(answering(200, body)).request(FORM)
    assert (answer.access_token, answer.refresh_token, answer.expires_in) == (
        "1234.new",
        "1234.next",
        3600,
    )


@pytest.mark.parametrize("code", ["invalid_grant", "invalid_client", "unauthorized_client"])
async def test_a_refused_grant_is_revoked_naming_the_fix_without_the_credentials(
    code: str,
) -> None:
    body = {"error": code, "error_description": f"token {REFRESH} was revoked; {SECRET}"}
    with pytest.raises(GrantRevoked) as caught:
        await endpoint(answering(400, body)).request(FORM)
    text = caught.value.describe()
    assert code in text and "authorise again" in text
    assert REFRESH not in text and SECRET not in text


async def test_a_status_the_vendor_refuses_with_can_count_as_revoked() -> None:
    transport = answering(401, {"errors": "nope"})
    with pytest.raises(GrantRevoked):
        await endpoint(transport, revoked_statuses=(401,)).request(FORM)
    with pytest.raises(PermanentError) as caught:
        await endpoint(transport).request(FORM)
    assert not isinstance(caught.value, GrantRevoked)


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (503, "upstream down", RetryableError),
        (429, {"error": "slow_down"}, RateLimited),
        (200, {"access_token": "x"}, RetryableError),  # no expires_in: not a usable answer
        (200, "<html>", RetryableError),
    ],
)
async def test_what_is_worth_another_try_is_retryable(
    status: int, body: object, expected: type[Exception]
) -> None:
    with pytest.raises(expected) as caught:
        await endpoint(answering(status, body, {"retry-after": "7"})).request(FORM)
    assert not isinstance(caught.value, GrantRevoked)
    if expected is RateLimited:
        assert caught.value.retry_after == 7  # type: ignore[attr-defined]


async def test_a_timeout_is_retryable_and_says_so() -> None:
    def hang(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow", request=request)

    with pytest.raises(VendorTimeout):
        await endpoint(httpx.MockTransport(hang)).request(FORM)
