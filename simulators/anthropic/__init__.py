"""A simulator of Anthropic's Messages API (``POST /v1/messages``) on a real HTTP port.

It speaks the documented wire format so the official ``anthropic`` SDK runs against it unchanged
(point ``base_url`` at it):

- headers: an API key (any non-empty ``x-api-key``, or ``Authorization: Bearer <key>``, which is
  how SDK 2.x sends it; with ``SIM_ANTHROPIC_KEYS`` set, only the keys it lists, comma-separated:
  another is a 401 ``authentication_error`` "invalid x-api-key", as Anthropic answers it) and
  ``anthropic-version`` are required; every answer carries a ``request-id`` header;
- answers: a ``message`` object with text content, or a ``tool_use`` block whose ``input`` is
  generated from the tool's ``input_schema`` when tools are offered (forced, ``any`` or ``auto``);
- errors: ``{"type": "error", "error": {"type", "message"}, "request_id"}`` with the documented
  status/type pairs (400 invalid_request_error, 401 authentication_error, 404 not_found_error,
  429 rate_limit_error + ``retry-after``, 500 api_error, 529 overloaded_error).

Generated content is deterministic per request: it is derived from a hash of the user's text, so
a different theme, style or niche gives different copy, and every item of an array (one per
image) gets its own concept. Strings reuse words of the user's message so they read like
print-on-demand copy.

Models: only the account's models (:data:`MODELS`, or ``SIM_ANTHROPIC_MODELS``) are served;
another name is a 404 ``not_found_error``, on ``POST /v1/messages`` and ``GET /v1/models/{id}``.
Prompt caching: a prefix marked with ``cache_control`` is written to the cache (usage
``cache_creation_input_tokens``) and read from it for five minutes after its last use
(``cache_read_input_tokens``), per API key and model, when it is at least 1024 tokens long;
shorter, it is not cached, as at Anthropic.

An intellectual-property risk review (a tool asking for a ``level`` enum with ``"none"`` and
``findings`` with a ``term``) is judged, not made up: the simulated model knows some well-known
marks (``marks.json``) and answers ``high`` with those named in the user's text, else ``none``
(:mod:`simulators.anthropic.judge`).

A user message containing ``SIM_ANTHROPIC_REFUSE_MARKER`` (``sim:refuse``) is declined with
``stop_reason: "refusal"``, as Claude declines a request against its usage policy.

Knobs: the shared ``SIM_*`` fault knobs (see :mod:`simulators.common`) and ``SIM_ANTHROPIC_RPM``,
requests per minute per API key (0, the default, means unlimited). The model's pace: an answer
comes ``SIM_ANTHROPIC_TTFT_MS`` plus its output tokens at ``SIM_ANTHROPIC_OUTPUT_TOKENS_PER_S``
after the request (0 and 0 unless ``SIM_PROFILE=realistic``: 800 ms and 60 tokens/s,
:mod:`simulators.common.profile`).

The package is laid out like the API: ``app`` (wiring), ``settings`` (the knobs), ``state``
(books, prompt cache, limiter), ``models``, ``validation``, ``generator`` (the content),
``judge`` (risk reviews), ``messages`` (the answer) and ``routes``.
"""

from simulators.anthropic.app import create_app
from simulators.anthropic.models import MODELS

__all__ = ["MODELS", "create_app"]
