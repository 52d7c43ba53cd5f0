"""What the Anthropic simulator holds: its books, the prompt cache, the rate limiter and the
settings the routes read, gathered in one :class:`AnthropicSim` every route gets as a
dependency."""

from __future__ import annotations

import collections
import hashlib
import hmac
import json
import time
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.responses import JSONResponse

from simulators.anthropic.errors import anthropic_error, error_type_for
from simulators.anthropic.models import Models
from simulators.common import SlidingWindowLimiter

# Prompt caching: a prefix shorter than this is not cached (Sonnet's and Opus' minimum), and a
# cached prefix lives this long after its last use.
MIN_CACHEABLE_TOKENS = 1024
CACHE_TTL_S = 300.0


@dataclass
class Books:
    """What the simulator served, for ``GET /_sim/books``."""

    requests: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    errors: collections.Counter[str] = field(default_factory=collections.Counter)

    def as_dict(self) -> dict[str, object]:
        return {
            "requests": self.requests,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "errors": dict(self.errors),
        }


@dataclass
class PromptCache:
    """Cached prompt prefixes per API key and model: when each expires (monotonic)."""

    expires: dict[str, float] = field(default_factory=dict)

    def use(self, api_key: str, model: str, prefix: list[Any]) -> bool:
        """Record a use of ``prefix``; whether it was cached (a read, else a write)."""
        key = hashlib.sha256(f"{api_key}\x00{model}\x00".encode()).hexdigest()
        key += hashlib.sha256(json.dumps(prefix, sort_keys=True).encode()).hexdigest()
        now = time.monotonic()
        hit = self.expires.get(key, 0.0) > now
        self.expires[key] = now + CACHE_TTL_S
        return hit


@dataclass
class AnthropicSim:
    """Everything the simulator holds and reads."""

    limiter: SlidingWindowLimiter | None
    # Digests of the valid keys; empty: any non-empty key is valid.
    valid_keys: frozenset[str]
    models: Models
    refuse_marker: str
    books: Books = field(default_factory=Books)
    cache: PromptCache = field(default_factory=PromptCache)
    # The model's pace (SIM_ANTHROPIC_TTFT_MS, SIM_ANTHROPIC_OUTPUT_TOKENS_PER_S; 0: at once).
    ttft_ms: float = 0.0
    output_tokens_per_s: float = 0.0

    def answer_seconds(self, output_tokens: int) -> float:
        """How long the model takes to write an answer of ``output_tokens``, unstreamed: the
        first token, then the rest at the model's output speed."""
        writing = output_tokens / self.output_tokens_per_s if self.output_tokens_per_s > 0 else 0
        return self.ttft_ms / 1000.0 + writing

    def refuse(self, status: int, message: str, retry_after: float | None = None) -> JSONResponse:
        """An error answer, counted in the books."""
        self.books.errors[error_type_for(status)] += 1
        return anthropic_error(status, message, retry_after=retry_after)

    def unauthorized(self, api_key: str) -> JSONResponse | None:
        """The 401 for a missing or unknown key, else None."""
        if not api_key:
            return self.refuse(401, "x-api-key header is required")
        if self.valid_keys and not any(hmac.compare_digest(api_key, k) for k in self.valid_keys):
            return self.refuse(401, "invalid x-api-key")
        return None


def credential(request: Request) -> str:
    """The caller's API key: ``x-api-key``, or ``Authorization: Bearer`` as newer SDKs send it."""
    key = request.headers.get("x-api-key", "").strip()
    if not key:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        key = token.strip() if scheme.lower() == "bearer" else ""
    # Rate limits are kept per key; keep a digest, not the secret itself.
    return hashlib.sha256(key.encode()).hexdigest() if key else ""


async def get_sim(request: Request) -> AnthropicSim:
    sim: AnthropicSim = request.app.state.sim
    return sim


Sim = Annotated[AnthropicSim, Depends(get_sim)]
