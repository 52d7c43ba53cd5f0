"""The generator stage's Claude client: one Messages call turns a job's theme into creative briefs;
another reviews a design's text for intellectual-property risk (:mod:`.claude_risk`).

Structured output comes from a forced tool (``tool_choice={"type": "tool"}``) whose
``input_schema`` asks for exactly ``count`` briefs; the tool input is validated with pydantic and
normalised to the marketplace limits (title length, tag count and length).

SDK errors are mapped onto :mod:`shared.platform.errors` so the runner can route on retryable vs
permanent; the vendor's status, error type and message are kept, the API key never is.
"""

from __future__ import annotations

import contextlib
import logging
import re
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any, cast

import anthropic
import httpx2
from anthropic.types import Message, ToolChoiceToolParam, ToolParam, Usage
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from shared.adapters.vendors.claude_risk import (
    RISK_MAX_TOKENS,
    RISK_SYSTEM_PROMPT,
    review_from_tool_input,
    risk_message,
    risk_tool,
)
from shared.contract.events import TokenCounts
from shared.domain.screening.checks import DesignText, RiskLevel, RiskReview
from shared.platform.errors import (
    ConfigError,
    PermanentError,
    PodError,
    RetryableError,
    VendorTimeout,
    classify_http_status,
    parse_retry_after,
)
from shared.platform.http import async_client2
from shared.platform.settings import PodSettings

logger = logging.getLogger(__name__)

VENDOR = "anthropic"
TOOL_NAME = "submit_designs"
MAX_BRIEFS = 25
# Titles of earlier batches quoted to the model, newest last (keeps the prompt small).
_MAX_AVOID = 75
TITLE_MAX = 140
TAGS_MAX = 13
TAG_LEN_MAX = 20
# Output budget: a base plus room for each brief (a brief is ~300 tokens; leave slack).
_BASE_TOKENS = 1024
_TOKENS_PER_BRIEF = 600
_MAX_TOKENS_CAP = 16_000

SYSTEM_PROMPT = (
    "You are a creative director for a print-on-demand shop. You turn a theme into distinct, "
    "commercially appealing designs: a text-to-image prompt for each artwork, a negative prompt, "
    "and marketplace listing copy (title, description, tags). Avoid trademarks, brand names, "
    "real people and copyrighted characters. Always answer by calling the tool."
)


def _shorten(text: str, limit: int) -> str:
    """Collapse whitespace and cut ``text`` to ``limit`` characters at a word boundary if any."""
    text = re.sub(r"\s+", " ", text).strip()
    if len(text) <= limit:
        return text
    cut = text[:limit]
    if text[limit] != " " and " " in cut[1:]:
        cut = cut.rsplit(" ", 1)[0]  # drop the partial last word
    return cut.rstrip(" -,;:|")


def normalise_tags(tags: list[str]) -> list[str]:
    """Strip, lowercase, drop characters marketplaces refuse, cap length and count, dedupe."""
    out: list[str] = []
    for raw in tags:
        # Etsy-like tags allow letters, digits, spaces, hyphens and apostrophes.
        tag = "".join(ch for ch in raw.lower() if ch.isalnum() or ch in " -'")
        tag = _shorten(tag, TAG_LEN_MAX)
        if tag and tag not in out:
            out.append(tag)
        if len(out) == TAGS_MAX:
            break
    return out


class CreativeBrief(BaseModel):
    """What one image needs: how to draw it and how to list it."""

    model_config = ConfigDict(str_strip_whitespace=True)

    prompt: str = Field(min_length=1, description="text-to-image prompt")
    negative_prompt: str
    title: str = Field(min_length=1, max_length=TITLE_MAX, description="listing title")
    description: str = Field(min_length=1)
    tags: list[str] = Field(default_factory=list, max_length=TAGS_MAX)

    @field_validator("title", mode="before")
    @classmethod
    def _cap_title(cls, value: object) -> object:
        return _shorten(value, TITLE_MAX) if isinstance(value, str) else value

    @field_validator("tags", mode="before")
    @classmethod
    def _normalise_tags(cls, value: object) -> object:
        if isinstance(value, list) and all(isinstance(t, str) for t in value):
            return normalise_tags(value)
        return value


class _ToolInput(BaseModel):
    designs: list[CreativeBrief]


def brief_schema() -> dict[str, Any]:
    """JSON schema of one brief as Claude sees it (hand-written: no ``$ref``, clear wording)."""
    return {
        "type": "object",
        "properties": {
            "prompt": {
                "type": "string",
                "description": "Detailed text-to-image prompt: subject, style, palette, "
                "composition; print-ready artwork on a plain background.",
            },
            "negative_prompt": {
                "type": "string",
                "description": "Comma-separated things the image must not contain.",
            },
            "title": {
                "type": "string",
                "maxLength": TITLE_MAX,
                "description": "Marketplace listing title, keyword-rich, at most 140 characters.",
            },
            "description": {
                "type": "string",
                "description": "Listing description, two or three sentences.",
            },
            "tags": {
                "type": "array",
                "items": {"type": "string", "maxLength": TAG_LEN_MAX},
                "maxItems": TAGS_MAX,
                "description": "Up to 13 distinct lowercase search tags, each at most 20 chars.",
            },
        },
        "required": ["prompt", "negative_prompt", "title", "description", "tags"],
    }


# JSON-Schema keywords strict tool use cannot enforce (grammar-constrained sampling supports
# no length, pattern or numeric bounds and minItems 0 or 1 only): the descriptions say them in
# words and briefs_from_tool_input checks them.
_NOT_STRICT = frozenset(
    {"minLength", "maxLength", "pattern", "maxItems", "minimum", "maximum", "multipleOf"}
)


def strict_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` in the subset strict tool use supports: every object closed
    (``additionalProperties: false``, every property required), unsupported bounds dropped,
    ``minItems`` at most 1."""
    out = {k: v for k, v in schema.items() if k not in _NOT_STRICT}
    if "minItems" in out:
        out["minItems"] = min(1, int(out["minItems"]))
    if out.get("type") == "object":
        props = {k: strict_schema(v) for k, v in (out.get("properties") or {}).items()}
        out |= {"properties": props, "required": list(props), "additionalProperties": False}
    if isinstance(out.get("items"), dict):
        out["items"] = strict_schema(out["items"])
    return out


def designs_tool(count: int, *, strict: bool = True) -> dict[str, Any]:
    """The forced tool whose input is exactly ``count`` briefs (``strict``: the input is
    guaranteed to have the schema's shape; the count and lengths are checked on arrival)."""
    schema = {
        "type": "object",
        "properties": {
            "designs": {
                "type": "array",
                "items": brief_schema(),
                "minItems": count,
                "maxItems": count,
                "description": f"Exactly {count} designs.",
            }
        },
        "required": ["designs"],
    }
    tool: dict[str, Any] = {
        "name": TOOL_NAME,
        "description": f"Submit exactly {count} distinct print-on-demand designs.",
        "input_schema": strict_schema(schema) if strict else schema,
    }
    if strict:
        tool["strict"] = True
    return tool


def user_message(
    *,
    theme: str,
    style: str,
    niche: str,
    count: int,
    user_prompt: str | None,
    avoid: Sequence[str] = (),
) -> str:
    """The user turn: the job's facets as ``Key: value`` lines, then the instructions.

    ``avoid`` lists titles already written for the job (by an earlier batch of a large job),
    so the new designs differ from them."""
    lines = [
        f"Theme: {theme}",
        f"Style: {style}",
        f"Niche: {niche}",
        f"Number of designs: {count}",
        "",
    ]
    if user_prompt:
        lines += [
            f"Artwork prompt (fixed, used for every design): {user_prompt}",
            "Write listing copy that matches this artwork; vary the angle of each listing.",
        ]
    else:
        lines.append(
            "Give every design its own concept (motif, composition, palette) so no two images "
            "look alike, all true to the theme, style and niche."
        )
    if avoid:
        lines += ["", "Designs already made for this job (do not repeat or closely echo them):"]
        lines += [f"- {title}" for title in avoid[-_MAX_AVOID:]]
    return "\n".join(lines)


def briefs_from_tool_input(
    data: object, count: int, user_prompt: str | None = None
) -> list[CreativeBrief]:
    """Validate Claude's tool input and return ``count`` briefs.

    Raises RetryableError when the answer is invalid or has too few briefs: the model may answer
    differently next time.
    """
    try:
        parsed = _ToolInput.model_validate(data)
    except ValidationError as exc:
        # Keep the first problems only: the message lands in logs and DLQ headers.
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()[:3]
        )
        raise RetryableError(
            f"invalid tool input: {problems}", vendor=VENDOR, code="invalid_output"
        ) from None
    if len(parsed.designs) < count:
        raise RetryableError(
            f"asked for {count} briefs, got {len(parsed.designs)}",
            vendor=VENDOR,
            code="too_few_briefs",
        )
    briefs = parsed.designs[:count]
    if user_prompt:
        briefs = [b.model_copy(update={"prompt": user_prompt}) for b in briefs]
    return briefs


def map_error(
    exc: anthropic.AnthropicError, *, secret: str = "", retry_after_max_s: float = 120.0
) -> PodError:
    """Map an SDK error onto the POD error classes, keeping status, error type and message."""
    if isinstance(exc, anthropic.APITimeoutError):  # before APIConnectionError: it subclasses it
        return VendorTimeout("request timed out", vendor=VENDOR, code="timeout")
    if isinstance(exc, anthropic.APIConnectionError):
        return RetryableError(
            _redact(f"connection error: {exc.message}", secret),
            vendor=VENDOR,
            code="connection_error",
        )
    if isinstance(exc, anthropic.APIStatusError):
        status = exc.status_code
        code = exc.type or _body_error_type(exc.body)
        message = _redact(exc.api_message or f"HTTP {status}", secret)
        cls = classify_http_status(status)
        return cls(
            message,
            vendor=VENDOR,
            status=status,
            code=code,
            retry_after=_retry_after(exc, retry_after_max_s) if status == 429 else None,
        )
    return RetryableError(_redact(str(exc), secret), vendor=VENDOR, code=type(exc).__name__)


def _body_error_type(body: object) -> str | None:
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        kind = body["error"].get("type")
        return kind if isinstance(kind, str) else None
    return None


def _retry_after(exc: anthropic.APIStatusError, most_s: float) -> float | None:
    """The wait a 429 asks for, at most ``most_s``: a vendor's hour-long Retry-After must not
    park the job (and its partition's retries) for an hour."""
    headers = exc.response.headers
    for name, scale in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        seconds = parse_retry_after(headers.get(name), scale=scale)
        if seconds is not None:
            return min(seconds, most_s)
    return None


def _redact(text: str, secret: str) -> str:
    # Belt and braces: vendor messages should never echo the key, but if one did, hide it.
    return text.replace(secret, "[redacted]") if secret else text


@dataclass
class TokenUsage:
    """Tokens spent by the calls it was passed to (a job's batches add up here)."""

    input: int = 0
    output: int = 0
    cache_read: int = 0
    cache_write: int = 0

    def add(self, usage: Usage) -> None:
        """Add one answer's ``usage`` (the SDK's typed object)."""
        self.input += usage.input_tokens
        self.output += usage.output_tokens
        self.cache_read += usage.cache_read_input_tokens or 0
        self.cache_write += usage.cache_creation_input_tokens or 0

    def merge(self, other: TokenUsage) -> None:
        """Add the tokens ``other`` counted."""
        self.input += other.input
        self.output += other.output
        self.cache_read += other.cache_read
        self.cache_write += other.cache_write


class ClaudeClient:
    """Writes creative briefs with Claude (or the simulator, via ``base_url``)."""

    def __init__(
        self,
        *,
        api_key: str,
        model: str = "claude-sonnet-4-6",
        base_url: str | None = None,
        timeout_s: float = 60.0,
        max_retries: int = 2,
        min_tokens_per_s: float = 40.0,
        retry_after_max_s: float = 120.0,
        transport: httpx2.AsyncBaseTransport | None = None,
    ) -> None:
        """``transport`` replaces the network (tests: ``httpx2.ASGITransport`` over the
        simulator's app, in process)."""
        self.model = model
        self.retry_after_max_s = retry_after_max_s
        self.timeout_s = timeout_s
        self.min_tokens_per_s = min_tokens_per_s
        self._secret = api_key
        # The SDK retries 429/5xx/connection errors itself (honouring retry-after); whatever is
        # left after max_retries reaches the runner as a mapped PodError.
        self._client = anthropic.AsyncAnthropic(
            api_key=api_key,
            base_url=base_url,
            timeout=timeout_s,
            max_retries=max_retries,
            # The SDK's own settings, over aiohttp (shared.platform.http: a third of the CPU per
            # call).
            http_client=async_client2(
                timeout=timeout_s,
                limits=httpx2.Limits(max_connections=100, max_keepalive_connections=20),
                follow_redirects=True,
            )
            if transport is None
            else httpx2.AsyncClient(transport=transport, timeout=timeout_s),
        )

    def __repr__(self) -> str:
        return f"ClaudeClient(model={self.model!r}, base_url={str(self._client.base_url)!r})"

    def request_timeout_s(self, max_tokens: int) -> float:
        """Time one call may take: the base timeout plus writing ``max_tokens`` at the slowest
        expected speed. A fixed 60 s cut off 25 briefs (16k tokens) midway, and every retry of
        the same call was billed again."""
        return self.timeout_s + max_tokens / self.min_tokens_per_s

    async def check_model(self) -> None:
        """Fail at start, not in a retry loop, when the API does not know ``model`` or refuses
        the key (:class:`~shared.platform.errors.ConfigError`). Other failures (the API unreachable)
        are only logged: calls retry them later."""
        try:
            await self.model_info()
        except anthropic.NotFoundError:
            known = await self.known_models()
            raise ConfigError(
                f"CLAUDE_MODEL: the API does not know {self.model!r}"
                + (f"; this key may use: {', '.join(known)}" if known else "")
            ) from None
        except (anthropic.AuthenticationError, anthropic.PermissionDeniedError) as exc:
            raise ConfigError(f"CLAUDE_API_KEY: refused by the API ({exc.status_code})") from None
        except anthropic.AnthropicError as exc:
            logger.warning(
                "claude model not checked model=%s error=%s",
                self.model,
                map_error(exc, secret=self._secret).describe(),
            )

    async def model_info(self) -> anthropic.types.ModelInfo:
        """``GET /v1/models/{model}``: raises the SDK's errors (NotFoundError: unknown model)."""
        return await self._client.models.retrieve(self.model)

    async def known_models(self, limit: int = 50) -> list[str]:
        """The models this key may use (empty when the API will not say)."""
        with contextlib.suppress(anthropic.AnthropicError):
            return [m.id async for m in await self._client.models.list(limit=limit)]
        return []

    @property
    def base_url(self) -> str:
        return str(self._client.base_url)

    async def write_briefs(
        self,
        *,
        theme: str,
        style: str,
        niche: str,
        count: int,
        user_prompt: str | None = None,
        job_id: str | None = None,
        avoid: Sequence[str] = (),
        usage: TokenUsage | None = None,
    ) -> list[CreativeBrief]:
        """One Messages call with structured output (a forced tool asking for ``count`` briefs,
        at most :data:`MAX_BRIEFS`; larger jobs are written in batches by the generator).

        When ``user_prompt`` is given, every brief's ``prompt`` is the user's prompt (Claude still
        writes the listing copy). Raises a :class:`~shared.platform.errors.PodError` subclass on
        failure.
        """
        if not 1 <= count <= MAX_BRIEFS:
            # A job asking for this is malformed; another try would fail the same way.
            raise PermanentError(
                f"count must be between 1 and {MAX_BRIEFS}, got {count}",
                vendor=VENDOR,
                code="invalid_count",
            )
        started = time.monotonic()
        text = user_message(
            theme=theme,
            style=style,
            niche=niche,
            count=count,
            user_prompt=user_prompt,
            avoid=avoid,
        )
        max_tokens = min(_MAX_TOKENS_CAP, _BASE_TOKENS + _TOKENS_PER_BRIEF * count)
        message, tool_input = await self._forced_tool_call(
            system=SYSTEM_PROMPT,
            text=text,
            tool=designs_tool(count),
            max_tokens=max_tokens,
            job_id=job_id,
            usage=usage,
            task="write briefs for this job",
        )
        briefs = briefs_from_tool_input(tool_input, count, user_prompt)
        logger.info(
            "claude briefs written job_id=%s model=%s count=%d request_id=%s input_tokens=%d "
            "output_tokens=%d cache_read_tokens=%d duration_ms=%d",
            job_id,
            self.model,
            len(briefs),
            message._request_id,
            message.usage.input_tokens,
            message.usage.output_tokens,
            message.usage.cache_read_input_tokens or 0,
            (time.monotonic() - started) * 1000,
        )
        return briefs

    async def _forced_tool_call(
        self,
        *,
        system: str,
        text: str,
        tool: dict[str, Any],
        max_tokens: int,
        job_id: str | None,
        usage: TokenUsage | None,
        task: str,
    ) -> tuple[Message, object]:
        """One Messages call that must answer with ``tool``: the answer and the tool's input
        (not validated yet). Raises the mapped PodError; a refusal is permanent (``task`` says
        what was declined), an answer cut short or without the tool call retryable."""
        name = tool["name"]
        try:
            message = await self._client.messages.create(
                model=self.model,
                max_tokens=max_tokens,
                timeout=self.request_timeout_s(max_tokens),
                # Cached (prompt caching) once the stable prefix (tools + system) reaches the
                # model's minimum cacheable length; shorter, the API simply does not cache.
                system=[{"type": "text", "text": system, "cache_control": {"type": "ephemeral"}}],
                messages=[{"role": "user", "content": text}],
                tools=[cast(ToolParam, tool)],
                tool_choice=ToolChoiceToolParam(type="tool", name=name),
            )
        except anthropic.AnthropicError as exc:
            err = map_error(exc, secret=self._secret, retry_after_max_s=self.retry_after_max_s)
            logger.warning(
                "claude call failed job_id=%s model=%s tool=%s error_class=%s status=%s code=%s "
                "message=%s",
                job_id,
                self.model,
                name,
                err.error_class,
                err.status,
                err.code,
                err.message,
            )
            raise err from exc
        if usage is not None:  # billed whatever the answer turns out to be
            usage.add(message.usage)
        if message.stop_reason == "refusal":
            # The model declined: asking again gets the same answer, billed.
            raise PermanentError(
                f"Claude declined to {task} (stop_reason refusal, "
                f"request_id {message._request_id})",
                vendor=VENDOR,
                code="refusal",
            )
        if message.stop_reason == "max_tokens":
            raise RetryableError("answer cut short by max_tokens", vendor=VENDOR, code="max_tokens")
        tool_input = next(
            (b.input for b in message.content if b.type == "tool_use" and b.name == name),
            None,
        )
        if tool_input is None:
            raise RetryableError(
                f"no {name} tool call in the answer", vendor=VENDOR, code="no_tool_use"
            )
        return message, tool_input

    async def review_risk(
        self, text: DesignText, *, job_id: str, usage: TokenUsage | None = None
    ) -> RiskReview:
        """Claude's intellectual-property risk review of one design's text (the screener's
        :class:`~shared.domain.screening.checks.RiskReviewer`): one forced, strict tool call
        (:mod:`shared.adapters.vendors.claude_risk`). The review's tokens are in
        ``RiskReview.tokens`` (and added to ``usage`` when given, as the briefs' are).
        Raises a :class:`~shared.platform.errors.PodError` subclass on failure; a malformed
        answer is retryable."""
        if not any(body.strip() for _, body in text.fields()):
            return RiskReview(level=RiskLevel.NONE)  # nothing to review: nothing to pay for
        started = time.monotonic()
        spent = TokenUsage()
        try:
            message, tool_input = await self._forced_tool_call(
                system=RISK_SYSTEM_PROMPT,
                text=risk_message(text),
                tool=risk_tool(),
                max_tokens=RISK_MAX_TOKENS,
                job_id=job_id,
                usage=spent,
                task="review this design's intellectual-property risk",
            )
            review = review_from_tool_input(tool_input)
        finally:
            if usage is not None:  # billed whether or not the answer was usable
                usage.merge(spent)
        logger.info(
            "claude risk reviewed job_id=%s model=%s level=%s findings=%d request_id=%s "
            "input_tokens=%d output_tokens=%d cache_read_tokens=%d duration_ms=%d",
            job_id,
            self.model,
            review.level.value,
            len(review.findings),
            message._request_id,
            spent.input,
            spent.output,
            spent.cache_read,
            (time.monotonic() - started) * 1000,
        )
        return replace(review, tokens=TokenCounts(**asdict(spent)))

    async def aclose(self) -> None:
        """Close the underlying HTTP connections."""
        await self._client.close()

    async def __aenter__(self) -> ClaudeClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


class ClaudeSettings(PodSettings):
    """The Anthropic account and how patient a call is (``CLAUDE_*``, ``ANTHROPIC_BASE_URL``)."""

    claude_api_key: SecretStr = Field(description="Anthropic API key (CLAUDE_API_KEY)")
    anthropic_base_url: str | None = Field(
        default=None, description="Unset = api.anthropic.com; the simulator's URL locally"
    )
    # claude-sonnet-4-5 reaches end of life on 2026-11-30 (the SDK warns); 4-6 replaces it.
    claude_model: str = "claude-sonnet-4-6"
    claude_timeout_s: float = Field(
        default=60.0, gt=0, description="Base time a Claude call may take (plus its writing)"
    )
    claude_retry_after_max_s: float = Field(
        default=120.0, ge=0, description="Longest Retry-After of a 429 that is honoured"
    )
    claude_min_tokens_per_s: float = Field(
        default=40.0, gt=0, description="Slowest writing speed a call is given time for"
    )


def claude_client(
    settings: ClaudeSettings, *, transport: httpx2.AsyncBaseTransport | None = None
) -> ClaudeClient:
    """The client ``settings`` describe (``transport``: see :class:`ClaudeClient`)."""
    return ClaudeClient(
        api_key=settings.claude_api_key.get_secret_value(),
        model=settings.claude_model,
        base_url=settings.anthropic_base_url,
        timeout_s=settings.claude_timeout_s,
        min_tokens_per_s=settings.claude_min_tokens_per_s,
        retry_after_max_s=settings.claude_retry_after_max_s,
        transport=transport,
    )
