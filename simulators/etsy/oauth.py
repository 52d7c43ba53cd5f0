"""The OAuth 2.0 side of the Etsy simulator: grants, access tokens that expire, refresh tokens
that rotate, and Etsy's token endpoint.

From developers.etsy.com, Authentication ("Requesting a Refresh OAuth Token"), read 2026-12-06:
an access token lives one hour (``expires_in: 3600``), a refresh token 90 days; ``POST
/v3/public/oauth/token`` (form-encoded ``grant_type=refresh_token``, ``client_id`` = the app's
keystring, ``refresh_token``) answers ``access_token``, ``token_type``, ``expires_in`` and a new
``refresh_token``; both tokens start with the user's numeric id (``12345678.…``). Refusals are
OAuth's ``{"error": ..., "error_description": ...}``: 400 ``invalid_grant`` from the token
endpoint ("refresh_token is revoked", etsy/open-api issue 519), 401 ``invalid_token`` ("access
token is expired") from the API, 403 ``insufficient_scope`` (etsy/open-api issue 598).

What Etsy does not document, and the simulator settles strictly (each a knob):

- A refresh token is good once (Etsy's client libraries report the one sent stops working at
  once). A spent one presented again is refused with ``invalid_grant``, and by default also
  revokes the whole grant, its newest tokens included, as OAuth 2.1's refresh token reuse
  detection does (``SIM_ETSY_REFRESH_REUSE=revoke``; ``refuse`` refuses that request only).
  Strict is what tests the engine's lock: two processes spending one refresh token leave the
  shop with no working token at all.
- A token the simulator did not issue (one configured before it started, or issued by an
  earlier run of it) is taken, by default, as issued at the moment it is first seen, for all
  the scopes the engine needs, and expires like any other (``SIM_ETSY_STRICT_TOKENS=1``:
  refused, as Etsy refuses a token it does not know).

Hooks for tests (mounted by :mod:`simulators.etsy.routes_sim`): the seller authorising the
app (Etsy's consent screen and the code exchange in one step) and the seller removing it
(every token of the grant revoked).
"""

from __future__ import annotations

import hmac
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

# What the engine's calls need (their `security` in Etsy's document), and listings_d for the
# tests that delete a listing as a seller does.
DEFAULT_SCOPES = ("listings_d", "listings_r", "listings_w", "shops_r")
ACCESS_TTL_S = 3600.0
REFRESH_TTL_S = 90 * 86400.0
Reuse = Literal["revoke", "refuse"]


class OAuthError(Exception):
    """A refusal in OAuth's format: ``status``, ``error`` and ``error_description``."""

    def __init__(self, status: int, error: str, description: str) -> None:
        super().__init__(f"{error}: {description}")
        self.status = status
        self.error = error
        self.description = description

    def body(self) -> dict[str, object]:
        return {"error": self.error, "error_description": self.description}


@dataclass
class Grant:
    """One authorisation of an app by a user: what its tokens may do, and whether it stands."""

    grant_id: int
    user_id: int
    client_id: str | None  # the app's keystring; None until first used (a token seen, not made)
    scopes: tuple[str, ...]
    revoked: str | None = None
    refreshes: int = 0


@dataclass
class Issued:
    """A token and its grant; ``spent`` for a refresh token already exchanged."""

    grant: Grant
    expires_at: float
    spent: bool = False


@dataclass
class OAuthBooks:
    """What happened at the token endpoint (for tests)."""

    refreshed: int = 0
    refused: dict[str, int] = field(default_factory=dict)
    reuse_detected: int = 0
    expired_access: int = 0

    def refuse(self, error: str) -> None:
        self.refused[error] = self.refused.get(error, 0) + 1


def user_of(token: str) -> int | None:
    """The user id an Etsy token starts with (``12345678.…``), or None."""
    prefix, sep, rest = token.partition(".")
    if not sep or not rest or not prefix.isdigit() or int(prefix) < 1:
        return None
    return int(prefix)


def new_token(user_id: int) -> str:
    # Etsy's tokens: the user id, a dot, then a long opaque string.
    return f"{user_id}.{secrets.token_urlsafe(48)}"


class OAuth:
    """Grants and tokens. ``clock`` is wall-clock seconds (tests may pass their own)."""

    def __init__(
        self,
        *,
        access_ttl_s: float = ACCESS_TTL_S,
        refresh_ttl_s: float = REFRESH_TTL_S,
        strict: bool = False,
        reuse: Reuse = "revoke",
        scopes: Iterable[str] = DEFAULT_SCOPES,
        known_refresh_tokens: Iterable[str] = (),
    ) -> None:
        self.access_ttl_s = access_ttl_s
        self.refresh_ttl_s = refresh_ttl_s
        self.strict = strict
        self.reuse: Reuse = reuse
        self.scopes = tuple(sorted(set(scopes)))
        self._known = [t for t in known_refresh_tokens if t]
        self.reset()

    def reset(self) -> None:
        self.grants: list[Grant] = []
        self.access: dict[str, Issued] = {}
        self.refresh: dict[str, Issued] = {}
        self.books = OAuthBooks()
        for token in self._known:
            self._adopt_refresh(token, strict_ok=True)

    # --- making tokens ----------------------------------------------------------------------

    def _grant(self, user_id: int, client_id: str | None, scopes: Iterable[str]) -> Grant:
        grant = Grant(len(self.grants) + 1, user_id, client_id, tuple(sorted(set(scopes))))
        self.grants.append(grant)
        return grant

    def _issue(self, grant: Grant) -> dict[str, object]:
        now = time.time()
        access, refresh = new_token(grant.user_id), new_token(grant.user_id)
        self.access[access] = Issued(grant, now + self.access_ttl_s)
        self.refresh[refresh] = Issued(grant, now + self.refresh_ttl_s)
        return {
            "access_token": access,
            "token_type": "Bearer",
            # Whole seconds, as Etsy answers; never more than the token really lives.
            "expires_in": max(1, int(self.access_ttl_s)),
            "refresh_token": refresh,
        }

    def authorize(
        self, user_id: int, client_id: str | None = None, scopes: Iterable[str] | None = None
    ) -> dict[str, object]:
        """The seller authorised the app: a new grant and its first tokens."""
        if user_id < 1:
            raise ValueError("user_id must be a positive integer")
        return self._issue(self._grant(user_id, client_id, scopes or self.scopes))

    def _adopt_refresh(self, token: str, *, strict_ok: bool = False) -> Issued | None:
        """A refresh token it did not issue, taken as issued now (unless strict)."""
        user = user_of(token)
        if user is None or (self.strict and not strict_ok):
            return None
        issued = Issued(self._grant(user, None, self.scopes), time.time() + self.refresh_ttl_s)
        self.refresh[token] = issued
        return issued

    # --- the token endpoint -----------------------------------------------------------------

    def refresh_grant(self, form: dict[str, str]) -> dict[str, object]:
        """``POST /v3/public/oauth/token``: the new tokens, or OAuthError."""
        grant_type = form.get("grant_type", "")
        if not grant_type:
            raise self._refused(400, "invalid_request", "grant_type is required")
        if grant_type != "refresh_token":
            raise self._refused(
                400, "unsupported_grant_type", f"grant_type {grant_type!r} is not supported here"
            )
        client_id, token = form.get("client_id", ""), form.get("refresh_token", "")
        if not client_id:
            raise self._refused(400, "invalid_request", "client_id is required")
        if not token:
            raise self._refused(400, "invalid_request", "refresh_token is required")
        issued = self._find(self.refresh, token) or self._adopt_refresh(token)
        if issued is None:
            raise self._refused(400, "invalid_grant", "refresh_token is invalid (no such token)")
        grant = issued.grant
        if grant.client_id is None:
            grant.client_id = client_id  # a token adopted at first sight: its app is this one
        if not hmac.compare_digest(grant.client_id, client_id):
            raise self._refused(400, "invalid_grant", "refresh_token was issued to another client")
        if grant.revoked is not None:
            raise self._refused(400, "invalid_grant", "refresh_token is revoked")
        if issued.spent:
            self.books.reuse_detected += 1
            if self.reuse == "revoke":
                self.revoke_grant(grant, "a spent refresh token was presented again")
            raise self._refused(400, "invalid_grant", "refresh_token is revoked (already used)")
        if time.time() >= issued.expires_at:
            raise self._refused(400, "invalid_grant", "refresh_token is expired")
        issued.spent = True
        grant.refreshes += 1
        self.books.refreshed += 1
        return self._issue(grant)

    def _refused(self, status: int, error: str, description: str) -> OAuthError:
        self.books.refuse(error)
        return OAuthError(status, error, description)

    @staticmethod
    def _find(table: dict[str, Issued], token: str) -> Issued | None:
        # The token is the key: a dict lookup compares whole strings, and a miss says nothing
        # of how much of the token matched.
        return table.get(token)

    # --- the API's side -----------------------------------------------------------------------

    def check_access(self, token: str) -> Grant:
        """The grant a bearer token stands for, or OAuthError (401 invalid_token)."""
        issued = self._find(self.access, token)
        if issued is None:
            user = user_of(token)
            if self.strict or user is None:
                raise OAuthError(401, "invalid_token", "access token is invalid")
            issued = Issued(self._grant(user, None, self.scopes), time.time() + self.access_ttl_s)
            self.access[token] = issued  # first seen now: its hour starts now
        if issued.grant.revoked is not None:
            raise OAuthError(401, "invalid_token", "access token is revoked")
        if time.time() >= issued.expires_at:
            self.books.expired_access += 1
            raise OAuthError(401, "invalid_token", "access token is expired")
        return issued.grant

    def scopes_of(self, token: str) -> tuple[str, ...] | None:
        """What ``token`` may do (None: not a live token)."""
        try:
            return self.check_access(token).scopes
        except OAuthError:
            return None

    # --- the seller ---------------------------------------------------------------------------

    def revoke_grant(self, grant: Grant, reason: str) -> None:
        grant.revoked = reason

    def revoke(self, *, user_id: int | None = None, refresh_token: str | None = None) -> int:
        """The seller removed the app: every grant of ``user_id`` (or the grant of
        ``refresh_token``) revoked; how many."""
        targets: list[Grant] = []
        if refresh_token is not None:
            issued = self._find(self.refresh, refresh_token) or self._adopt_refresh(refresh_token)
            if issued is not None:
                targets.append(issued.grant)
        if user_id is not None:
            targets += [g for g in self.grants if g.user_id == user_id]
        for grant in targets:
            self.revoke_grant(grant, "the seller removed the app")
        return len({g.grant_id for g in targets})

    def expire_access(self, user_id: int | None = None) -> int:
        """Every live access token (of ``user_id``) ends now; how many."""
        now = time.time()
        ended = 0
        for issued in self.access.values():
            if (user_id is None or issued.grant.user_id == user_id) and issued.expires_at > now:
                issued.expires_at = now
                ended += 1
        return ended

    def as_dict(self) -> dict[str, object]:
        return {
            "grants": len(self.grants),
            "revoked_grants": sum(1 for g in self.grants if g.revoked is not None),
            "refreshed": self.books.refreshed,
            "refused": dict(self.books.refused),
            "reuse_detected": self.books.reuse_detected,
            "expired_access": self.books.expired_access,
            "access_ttl_s": self.access_ttl_s,
            "refresh_ttl_s": self.refresh_ttl_s,
            "strict": self.strict,
            "reuse": self.reuse,
        }
