"""Bearer-key authentication (on when ``API_KEYS`` is set)."""

from __future__ import annotations

import hashlib
import hmac
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from services.api.errors import ApiError

# auto_error=False: a missing header must give our 401 shape, not FastAPI's 403.
_bearer = HTTPBearer(auto_error=False, description="One of the keys in API_KEYS")


def principal_of(key: str) -> str:
    """A stable, non-secret name for an API key (for scoping and ``submitted_by``)."""
    return "key-" + hashlib.sha256(key.encode()).hexdigest()[:16]


def match_key(given: str, keys: list[str]) -> str | None:
    """The configured key equal to ``given``, compared in constant time; None if none is."""
    found = None
    for key in keys:
        # No early exit: the time taken does not tell which key (or how much of it) matched.
        if hmac.compare_digest(given.encode(), key.encode()):
            found = key
    return found


async def authenticate(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> str | None:
    """The caller's principal (see :func:`principal_of`), or None when auth is off.

    Raises a 401 with ``WWW-Authenticate: Bearer`` when a key is required and missing or wrong.
    """
    keys: list[str] = request.app.state.api.keys
    if not keys:
        return None
    key = match_key(credentials.credentials, keys) if credentials is not None else None
    if key is None:
        raise ApiError(401, "unauthorized", headers={"WWW-Authenticate": "Bearer"})
    return principal_of(key)


Principal = Annotated[str | None, Depends(authenticate)]
