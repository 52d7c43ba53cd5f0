"""An OAuth 2.0 token endpoint (RFC 6749 §5), as the vendors' grants call it.

Etsy's ``refresh_token`` grant and Shopify's ``client_credentials`` grant differ in what they
send and what they get back; the rest is the RFC's and is here once: the form-encoded POST, the
answer (``access_token``, ``expires_in``, maybe a new ``refresh_token`` and the ``scope``), the
error body (``error``, ``error_description``), and what each failure means to the engine. A
refusal of the grant itself (``invalid_grant``, ``invalid_client``, ``unauthorized_client``, or
a status the vendor uses for it) is :class:`~shared.adapters.credentials.GrantRevoked`: only the
seller can restore it; a server error, a timeout or a dropped connection is retryable and changed
nothing we know of. No credential ever leaves this module in any text (:class:`Redactor`).
"""

from __future__ import annotations

import collections
from collections.abc import Collection, Mapping
from typing import Any

import httpx
from pydantic import BaseModel, Field, ValidationError

from shared.adapters.credentials import GrantRevoked
from shared.platform.errors import (
    PodError,
    RetryableError,
    VendorTimeout,
    classify_http_status,
    parse_retry_after,
)
from shared.platform.http import async_client

# The RFC's error codes that refuse the grant or the client itself (RFC 6749 §5.2).
REVOKED_GRANT_ERRORS = frozenset({"invalid_grant", "invalid_client", "unauthorized_client"})


class Redactor:
    """The credentials a client sent (fixed ones, and the latest tokens): never in an error or
    a log line, even when a vendor echoes one back."""

    def __init__(self, *fixed: str | None, keep: int = 4) -> None:
        self._fixed = [s for s in fixed if s]
        self._recent: collections.deque[str] = collections.deque(maxlen=keep)

    def remember(self, secret: str | None) -> None:
        if secret and secret not in self._recent and secret not in self._fixed:
            self._recent.append(secret)

    def __call__(self, text: str) -> str:
        for secret in sorted([*self._fixed, *self._recent], key=len, reverse=True):
            text = text.replace(secret, "***")
        return text


class TokenAnswer(BaseModel):
    """A successful answer (RFC 6749 §5.1)."""

    access_token: str = Field(min_length=1)
    token_type: str = "Bearer"  # noqa: S105  # a token type, not a token
    expires_in: int = Field(gt=0)
    refresh_token: str | None = Field(default=None, min_length=1)
    scope: str = ""


class TokenEndpoint:
    """One vendor's token endpoint: :meth:`request` posts a grant's form and returns the
    answer, or raises what its failure means (``what`` names it in messages, ``revoked_hint``
    says what the seller must do when the grant is refused, ``revoked_statuses`` are statuses
    the vendor answers a refused grant with besides the RFC's codes)."""

    def __init__(
        self,
        url: str,
        *,
        vendor: str,
        what: str,
        revoked_hint: str,
        redact: Redactor,
        headers: Mapping[str, str] | None = None,
        revoked_statuses: Collection[int] = (),
        timeout_s: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.url = url
        self.vendor = vendor
        self.what = what
        self.revoked_hint = revoked_hint
        self.redact = redact
        self.revoked_statuses = frozenset(revoked_statuses)
        self._http = async_client(
            headers={"Accept": "application/json", **(headers or {})},
            timeout=httpx.Timeout(timeout_s, connect=min(timeout_s, 10.0)),
            transport=transport,
        )

    async def request(self, form: Mapping[str, str]) -> TokenAnswer:
        for value in form.values():
            self.redact.remember(value)  # a refresh token or a secret sent in the form
        try:
            resp = await self._http.post(self.url, data=dict(form))
        except httpx.TimeoutException as exc:
            raise VendorTimeout(
                f"{self.what}: timed out ({type(exc).__name__})", vendor=self.vendor
            ) from None
        except httpx.TransportError as exc:
            raise RetryableError(
                self.redact(f"{self.what}: {type(exc).__name__}: {exc}"), vendor=self.vendor
            ) from None
        try:
            body: Any = resp.json()
        except ValueError:
            body = None
        if resp.status_code >= 400:
            raise self._refusal(resp, body)
        try:
            answer = TokenAnswer.model_validate(body)
        except ValidationError:
            raise RetryableError(
                f"{self.what}: the answer has no usable access_token/expires_in",
                vendor=self.vendor,
                status=resp.status_code,
            ) from None
        self.redact.remember(answer.access_token)
        self.redact.remember(answer.refresh_token)
        return answer

    def _refusal(self, resp: httpx.Response, body: Any) -> PodError:
        error = description = None
        if isinstance(body, dict):
            error = str(body.get("error") or "") or None
            description = str(body.get("error_description") or "") or None
        said = self.redact(
            ": ".join(p for p in (error, description) if p)[:300] or resp.reason_phrase
        )
        if error in REVOKED_GRANT_ERRORS or resp.status_code in self.revoked_statuses:
            return GrantRevoked(
                f"{self.what} refused the grant ({said}): {self.revoked_hint}",
                vendor=self.vendor,
                status=resp.status_code,
                code=error,
            )
        return classify_http_status(resp.status_code)(
            f"{self.what}: {said}",
            vendor=self.vendor,
            status=resp.status_code,
            code=error,
            retry_after=parse_retry_after(resp.headers.get("retry-after")),
        )

    async def aclose(self) -> None:
        await self._http.aclose()
