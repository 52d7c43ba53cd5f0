"""Bearer-key authentication and the two roles (on when ``API_KEYS`` or ``ADMIN_API_KEYS`` is set).

- a key of ``API_KEYS`` may read everything and submit jobs;
- a key of ``ADMIN_API_KEYS`` may do that too, and also change the running system: scale the
  stages, restart a worker, replay dead letters (the routes that take :data:`Admin`).

No key or an unknown one is a 401, a normal key on an admin route a 403. Keys never appear in
logs or answers: callers are named by :func:`label_of`, an HMAC of the key under the
deployment's own secret (services/api/labels.py), so a label cannot be tested against a guessed
key nor linked to the same key in another deployment.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from services.api.errors import ApiError
from services.api.settings import ApiSettings

# auto_error=False: a missing header must give our 401 shape, not FastAPI's 403.
_bearer = HTTPBearer(
    auto_error=False, description="One of the keys in API_KEYS (or ADMIN_API_KEYS)"
)

LABEL_PREFIX = "caller-"


def label_of(key: str, secret: bytes) -> str:
    """A stable, non-secret name for an API key within this deployment (for scoping and
    ``submitted_by``): 64 bits of an HMAC-SHA256 under the deployment's secret."""
    mac = hmac.new(secret, key.encode("utf-8", "surrogatepass"), hashlib.sha256)
    return LABEL_PREFIX + mac.hexdigest()[:16]


def legacy_label(key: str) -> str:
    """What callers were named before labels (an unsalted digest): found and replaced at start."""
    return "key-" + hashlib.sha256(key.encode()).hexdigest()[:16]


def _digest(key: str) -> bytes:
    # Comparing fixed-size digests keeps even the key's length out of the timing.
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).digest()


@dataclass(frozen=True)
class Caller:
    """Who is calling: a principal (see :func:`label_of`) and whether it holds an admin key."""

    principal: str
    admin: bool


@dataclass(frozen=True)
class KeyRing:
    """The configured keys of both roles, kept as digests."""

    keys: tuple[tuple[bytes, str], ...] = ()
    admin_keys: tuple[tuple[bytes, str], ...] = ()

    @classmethod
    def from_settings(cls, settings: ApiSettings, label_secret: bytes) -> KeyRing:
        """The keys of ``API_KEYS`` and ``ADMIN_API_KEYS``, labelled under ``label_secret``."""
        return cls(
            keys=tuple((_digest(k), label_of(k, label_secret)) for k in settings.key_list()),
            admin_keys=tuple(
                (_digest(k), label_of(k, label_secret)) for k in settings.admin_key_list()
            ),
        )

    @property
    def enabled(self) -> bool:
        """Authentication is on as soon as one key of either role is configured."""
        return bool(self.keys or self.admin_keys)

    def lookup(self, given: str) -> Caller | None:
        """The caller holding ``given``, compared in constant time; None if no key matches."""
        wanted = _digest(given)
        found: Caller | None = None
        # No early exit: the time taken does not tell which key (or role) matched, if any.
        for entries, admin in ((self.keys, False), (self.admin_keys, True)):
            for digest, principal in entries:
                if hmac.compare_digest(wanted, digest) and (found is None or admin):
                    found = Caller(principal=principal, admin=admin)
        return found


def keyring(request: Request) -> KeyRing:
    """The app's keys (set by the lifespan once the label secret is read, before any request)."""
    ring: KeyRing = request.app.state.keyring
    return ring


def _unauthorized() -> ApiError:
    return ApiError(
        401,
        "unauthorized",
        "a valid API key is required: Authorization: Bearer <key>",
        headers={"WWW-Authenticate": "Bearer"},
    )


async def authenticate(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Caller | None:
    """The caller, or None when authentication is off; a 401 for a missing or wrong key."""
    ring = keyring(request)
    if not ring.enabled:
        return None
    caller = ring.lookup(credentials.credentials) if credentials is not None else None
    if caller is None:
        raise _unauthorized()
    return caller


async def authenticate_admin(
    caller: Annotated[Caller | None, Depends(authenticate)],
) -> Caller | None:
    """As :func:`authenticate`, and a 403 for a valid key that is not an admin key."""
    if caller is not None and not caller.admin:
        raise ApiError(
            403,
            "forbidden",
            "this operation needs an admin key (one of ADMIN_API_KEYS)",
        )
    return caller


async def _principal(caller: Annotated[Caller | None, Depends(authenticate)]) -> str | None:
    return caller.principal if caller is not None else None


async def _admin_principal(
    caller: Annotated[Caller | None, Depends(authenticate_admin)],
) -> str | None:
    return caller.principal if caller is not None else None


Principal = Annotated[str | None, Depends(_principal)]
"""Any valid key (or none needed when authentication is off): the caller's principal."""

Admin = Annotated[str | None, Depends(_admin_principal)]
"""An admin key (or none needed when authentication is off): the caller's principal."""
