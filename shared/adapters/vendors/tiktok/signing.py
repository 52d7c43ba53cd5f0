"""TikTok Shop's request signature (Partner Center, "Sign your API request")."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable

# Query parameters the signature leaves out.
UNSIGNED = frozenset({"sign", "access_token"})


def sign(secret: str, path: str, query: Iterable[tuple[str, str]], body: bytes = b"") -> str:
    """HMAC-SHA256 under the app secret, hex, of: the secret, the path, every query parameter
    but ``sign`` and ``access_token`` sorted by name as name+value, the body (the JSON bytes
    sent; nothing for a multipart upload), and the secret again."""
    params = "".join(f"{k}{v}" for k, v in sorted(q for q in query if q[0] not in UNSIGNED))
    plain = b"".join((secret.encode(), path.encode(), params.encode(), body, secret.encode()))
    return hmac.new(secret.encode(), plain, hashlib.sha256).hexdigest()
