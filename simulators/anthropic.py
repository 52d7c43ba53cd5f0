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

A user message containing ``SIM_ANTHROPIC_REFUSE_MARKER`` (``sim:refuse``) is declined with
``stop_reason: "refusal"``, as Claude declines a request against its usage policy.

Knobs: the shared ``SIM_*`` fault knobs (see :mod:`simulators.common`) and ``SIM_ANTHROPIC_RPM``,
requests per minute per API key (0, the default, means unlimited).
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import hmac
import json
import math
import os
import random
import re
import secrets
import string
import time
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from simulators.common import Knobs, SlidingWindowLimiter, error_json, install_faults, serve

# Injected faults look like what Anthropic actually sends under load.
ANTHROPIC_FAULT_STATUSES = (500, 529, 429)

# Seconds an injected 429 asks the client to wait (kept short so retries stay fast in tests).
INJECTED_RETRY_AFTER_S = 1

ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}

ERROR_MESSAGES = {
    429: "Number of requests has exceeded your rate limit. Please try again later.",
    500: "Internal server error",
    529: "Overloaded",
}

_ID_ALPHABET = string.ascii_letters + string.digits

# The models the simulated account may use (``SIM_ANTHROPIC_MODELS``, comma-separated, replaces
# them): any other name is a 404 ``not_found_error`` "model: <name>", as the API answers.
MODELS = {
    "claude-opus-4-7": ("Claude Opus 4.7", "2026-06-01T00:00:00Z"),
    "claude-opus-4-6": ("Claude Opus 4.6", "2026-02-05T00:00:00Z"),
    "claude-sonnet-4-6": ("Claude Sonnet 4.6", "2026-02-17T00:00:00Z"),
    "claude-sonnet-4-5": ("Claude Sonnet 4.5", "2025-09-29T00:00:00Z"),
    "claude-sonnet-4-5-20250929": ("Claude Sonnet 4.5", "2025-09-29T00:00:00Z"),
    "claude-haiku-4-5": ("Claude Haiku 4.5", "2025-10-15T00:00:00Z"),
    "claude-haiku-4-5-20251001": ("Claude Haiku 4.5", "2025-10-15T00:00:00Z"),
}
# A user message containing this makes the model decline (``stop_reason: "refusal"``), as Claude
# does for a request against its usage policy (``SIM_ANTHROPIC_REFUSE_MARKER``).
REFUSE_MARKER = "sim:refuse"


def _new_id(prefix: str) -> str:
    """An id in Anthropic's style (``msg_01…``, ``toolu_01…``, ``req_01…``)."""
    return prefix + "01" + "".join(secrets.choice(_ID_ALPHABET) for _ in range(22))


def error_type_for(status: int) -> str:
    """The documented ``error.type`` for an HTTP status (other 4xx/5xx fall back by class)."""
    if status in ERROR_TYPES:
        return ERROR_TYPES[status]
    return "invalid_request_error" if status < 500 else "api_error"


def anthropic_error(
    status: int, message: str | None = None, *, retry_after: float | None = None
) -> JSONResponse:
    """An error response exactly as the Messages API documents it."""
    request_id = _new_id("req_")
    headers = {"request-id": request_id}
    if retry_after is not None:
        # The header is whole seconds; round up so a client never retries too early.
        headers["retry-after"] = str(max(1, math.ceil(retry_after)))
    body: dict[str, object] = {
        "type": "error",
        "error": {
            "type": error_type_for(status),
            "message": message or ERROR_MESSAGES.get(status, "Error"),
        },
        "request_id": request_id,
    }
    return error_json(status, body, headers)


def fault(_request: Request, status: int) -> Response:
    """An injected fault in Anthropic's error format (used by :func:`install_faults`)."""
    retry_after = INJECTED_RETRY_AFTER_S if status == 429 else None
    return anthropic_error(status, retry_after=retry_after)


class InvalidRequest(Exception):
    """A request the API would refuse; carries the status and the documented message."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


# ---------------------------------------------------------------------------------------------
# Request validation
# ---------------------------------------------------------------------------------------------

_TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,128}$")


def _validate_body(body: object) -> dict[str, Any]:
    """Check the fields the Messages API requires; raise :class:`InvalidRequest` naming one."""
    if not isinstance(body, dict):
        raise InvalidRequest("body: Input should be a valid dictionary")
    for name in ("model", "max_tokens", "messages"):
        if name not in body:
            raise InvalidRequest(f"{name}: Field required")
    model = body["model"]
    if not isinstance(model, str) or not model.strip():
        raise InvalidRequest("model: Input should be a non-empty string")
    if model not in _models():
        raise InvalidRequest(f"model: {model}", status=404)
    max_tokens = body["max_tokens"]
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
        raise InvalidRequest("max_tokens: Input should be an integer greater than or equal to 1")
    if body.get("stream"):
        raise InvalidRequest("stream: streaming is not supported by this simulator")
    _validate_messages(body["messages"])
    _validate_tools(body.get("tools"), body.get("tool_choice"))
    return body


def _models() -> dict[str, tuple[str, str]]:
    raw = os.environ.get("SIM_ANTHROPIC_MODELS", "").strip()
    if not raw:
        return MODELS
    return {m.strip(): (m.strip(), "2026-01-01T00:00:00Z") for m in raw.split(",") if m.strip()}


def model_info(model_id: str) -> dict[str, str]:
    """A model object as ``GET /v1/models/{id}`` answers it."""
    name, created = _models()[model_id]
    return {"type": "model", "id": model_id, "display_name": name, "created_at": created}


def _validate_messages(messages: object) -> None:
    if not isinstance(messages, list) or not messages:
        raise InvalidRequest("messages: at least one message is required")
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            raise InvalidRequest(f"messages.{i}: Input should be a valid dictionary")
        if message.get("role") not in ("user", "assistant"):
            raise InvalidRequest(f"messages.{i}.role: Input should be 'user' or 'assistant'")
        if "content" not in message:
            raise InvalidRequest(f"messages.{i}.content: Field required")
        content = message["content"]
        if not isinstance(content, str | list):
            raise InvalidRequest(f"messages.{i}.content: Input should be a string or a list")
    if messages[0].get("role") != "user":
        raise InvalidRequest("messages.0.role: the first message must use the user role")


def _validate_tools(tools: object, tool_choice: object) -> None:
    if tools is None:
        if tool_choice is not None and _choice_type(tool_choice) != "none":
            raise InvalidRequest("tool_choice: may only be specified while providing tools")
        return
    if not isinstance(tools, list):
        raise InvalidRequest("tools: Input should be a valid list")
    for i, tool in enumerate(tools):
        if not isinstance(tool, dict):
            raise InvalidRequest(f"tools.{i}: Input should be a valid dictionary")
        name = tool.get("name")
        if not isinstance(name, str) or not _TOOL_NAME.match(name):
            raise InvalidRequest(f"tools.{i}.name: String should match pattern '^[a-zA-Z0-9_-]+$'")
        schema = tool.get("input_schema")
        if not isinstance(schema, dict):
            raise InvalidRequest(f"tools.{i}.input_schema: Field required")
        if schema.get("type") != "object":
            raise InvalidRequest(f"tools.{i}.input_schema.type: Input should be 'object'")
        strict = tool.get("strict", False)
        if not isinstance(strict, bool):
            raise InvalidRequest(f"tools.{i}.strict: Input should be a valid boolean")
        if strict:
            problem = _strict_problem(schema, f"tools.{i}.input_schema")
            if problem:
                raise InvalidRequest(problem)
    if tool_choice is None:
        return
    kind = _choice_type(tool_choice)
    if kind not in ("auto", "any", "tool", "none"):
        raise InvalidRequest("tool_choice.type: Input should be 'auto', 'any', 'tool' or 'none'")
    if kind == "tool":
        wanted = tool_choice.get("name") if isinstance(tool_choice, dict) else None
        if wanted not in {t["name"] for t in tools}:
            raise InvalidRequest(f"tool_choice.name: tool {wanted!r} is not among the tools")


# JSON-Schema keywords strict tool use (grammar-constrained sampling) does not support.
STRICT_UNSUPPORTED = (
    "minLength", "maxLength", "pattern", "maxItems", "uniqueItems", "minimum", "maximum",
    "exclusiveMinimum", "exclusiveMaximum", "multipleOf", "minProperties", "maxProperties",
)  # fmt: skip


def _strict_problem(schema: object, path: str) -> str | None:
    """Why ``schema`` cannot be used with ``strict: true``, or None: every object must close
    its properties (``additionalProperties: false``), and only ``minItems`` 0 or 1 and no
    length, pattern or numeric bounds are supported."""
    if not isinstance(schema, dict):
        return None
    for key in STRICT_UNSUPPORTED:
        if key in schema:
            return f"{path}.{key}: not supported with strict tool use"
    if schema.get("minItems", 0) not in (0, 1):
        return f"{path}.minItems: only 0 or 1 is supported with strict tool use"
    if schema.get("type") == "object" and schema.get("additionalProperties") is not False:
        return f"{path}.additionalProperties: must be false for every object with strict tool use"
    for name, sub in (schema.get("properties") or {}).items():
        problem = _strict_problem(sub, f"{path}.properties.{name}")
        if problem:
            return problem
    return _strict_problem(schema.get("items"), f"{path}.items")


def _choice_type(tool_choice: object) -> object:
    return tool_choice.get("type") if isinstance(tool_choice, dict) else None


# ---------------------------------------------------------------------------------------------
# Content generation
# ---------------------------------------------------------------------------------------------

MOTIFS = [
    "minimalist line art",
    "vintage badge",
    "soft watercolor",
    "bold retro sunset",
    "hand-lettered quote",
    "geometric pattern",
    "cute kawaii character",
    "botanical wreath",
    "distressed grunge emblem",
    "pop-art halftone",
    "boho rainbow",
    "mid-century modern shapes",
]
PALETTES = [
    "earthy terracotta",
    "soft pastel",
    "electric neon",
    "monochrome black and white",
    "muted sage green",
    "warm sunset",
    "deep ocean blue",
    "rich jewel-tone",
]
COMPOSITIONS = [
    "centered composition",
    "circular badge layout",
    "seamless repeating pattern",
    "stacked typography",
    "symmetrical layout",
]
PRODUCTS = ["T-Shirt", "Poster", "Mug", "Sticker", "Hoodie", "Tote Bag", "Wall Art Print"]
ADJECTIVES = ["Cute", "Retro", "Vintage", "Minimalist", "Funny", "Cozy", "Bold", "Whimsical"]
NEGATIVES = [
    "blurry",
    "low resolution",
    "watermark",
    "signature",
    "jpeg artifacts",
    "cropped",
    "extra limbs",
    "deformed hands",
    "text artifacts",
    "noisy background",
    "oversaturated",
    "duplicate subject",
]
GENERIC_TAGS = ["gift idea", "birthday gift", "graphic tee", "wall decor", "trendy design"]
# Words of the prompt template that say nothing about the subject.
STOPWORDS = frozenset(
    re.split(
        r"\s+",
        "a an and are as at be by for from in into is it of on or that the this to with write "
        "design designs number print demand each please listing copy return use tool",
    )
)

_FACET_LINE = re.compile(r"^\s*[-*]?\s*([A-Za-z][A-Za-z _-]{0,30}):\s*(.+?)\s*$", re.MULTILINE)


def _wanted(found: dict[str, str]) -> int | None:
    raw = next((v for k, v in found.items() if k.startswith("number of")), "")
    digits = re.match(r"\s*(\d{1,3})", raw)
    return int(digits.group(1)) if digits else None


@dataclass
class Facets:
    """What the user asked for, read from ``Key: value`` lines or, failing that, keywords."""

    theme: str
    style: str
    niche: str
    keywords: list[str]
    # Titles the prompt lists as already made ("- <title>" lines after one that says so):
    # Claude follows such an instruction, so the simulator does not repeat them either.
    avoid: list[str] = field(default_factory=list)
    # How many items the user asked for ("Number of designs: 4"): Claude follows it where the
    # schema cannot say it (strict mode has no maxItems).
    wanted: int | None = None

    @classmethod
    def from_text(cls, text: str) -> Facets:
        avoid: list[str] = []
        _, marker, rest = text.partition("already made")
        if marker:
            for line in rest.splitlines()[1:]:
                if not line.startswith("- "):
                    break
                avoid.append(line[2:].strip())
            text = text[: text.index("already made")]
        found = {k.strip().lower(): v for k, v in _FACET_LINE.findall(text)}
        words = [w for w in re.findall(r"[a-zA-Z][a-zA-Z'-]+", text.lower()) if w not in STOPWORDS]
        keywords = list(dict.fromkeys(w for w in words if len(w) >= 4)) or ["original"]
        theme = found.get("theme") or found.get("topic") or found.get("subject")
        return cls(
            theme=_clean(theme) if theme else " ".join(keywords[:2]),
            style=_clean(found.get("style", "")),
            niche=_clean(found.get("niche") or found.get("audience") or ""),
            keywords=keywords,
            avoid=avoid,
            wanted=_wanted(found),
        )


def _clean(value: str) -> str:
    # Keep the words, drop quoting and trailing punctuation a prompt template may add.
    return re.sub(r"\s+", " ", value.strip().strip("\"'.,;")).strip()


@dataclass
class Concept:
    """One design idea; every string of one generated object describes the same concept."""

    motif: str
    palette: str
    composition: str
    product: str
    adjective: str

    @classmethod
    def pick(cls, rng: random.Random, index: int, base: int, avoid: str = "") -> Concept:
        """A concept for item ``index``; ``avoid`` holds words not to repeat as the adjective."""
        # Step through the motif list by item index so the items of one array never share one.
        taken = set(avoid.lower().split())
        adjectives = [a for a in ADJECTIVES if a.lower() not in taken] or ADJECTIVES
        return cls(
            motif=MOTIFS[(base + index) % len(MOTIFS)],
            palette=rng.choice(PALETTES),
            composition=rng.choice(COMPOSITIONS),
            product=rng.choice(PRODUCTS),
            adjective=rng.choice(adjectives),
        )


@dataclass
class Generator:
    """Builds a value conforming to a JSON schema, deterministic for (user text, path)."""

    text: str
    root_schema: dict[str, Any] = field(default_factory=dict)
    # Mixed into the hash (e.g. the tool name) without changing what is read from the text.
    salt: str = ""
    facets: Facets = field(init=False)
    digest: str = field(init=False)
    titles: set[str] = field(init=False)

    def __post_init__(self) -> None:
        self.facets = Facets.from_text(self.text)
        self.titles = set(self.facets.avoid)
        self.digest = hashlib.sha256(f"{self.salt}\n{self.text}".encode()).hexdigest()

    def generate(self) -> Any:
        """A document conforming to the root schema."""
        root = Concept.pick(self.rng("$"), 0, int(self.digest[:8], 16))
        return self.value(self.root_schema, "", "$", root)

    def rng(self, path: str) -> random.Random:
        """A random source seeded by the user's text and the value's place in the document."""
        return random.Random(int(hashlib.sha256(f"{self.digest}:{path}".encode()).hexdigest(), 16))

    def value(self, schema: dict[str, Any], name: str, path: str, concept: Concept) -> Any:
        """A value for ``schema``; ``name`` is the property (or array) it belongs to."""
        schema = self._resolve(schema)
        rng = self.rng(path)
        if "const" in schema:
            return schema["const"]
        if schema.get("enum"):
            return rng.choice(schema["enum"])
        for key in ("anyOf", "oneOf", "allOf"):
            if schema.get(key):
                return self.value(schema[key][0], name, path, concept)
        kind = schema.get("type", "string")
        if isinstance(kind, list):
            kind = next((k for k in kind if k != "null"), "null")
        if kind == "object":
            return self._object(schema, path, concept, index=0)
        if kind == "array":
            return self._array(schema, name, path, concept)
        if kind == "integer":
            low = int(schema.get("minimum", 0))
            return rng.randint(low, int(schema.get("maximum", low + 100)))
        if kind == "number":
            bottom = float(schema.get("minimum", 0.0))
            return round(rng.uniform(bottom, float(schema.get("maximum", bottom + 100.0))), 2)
        if kind == "boolean":
            return rng.random() < 0.5
        if kind == "null":
            return None
        return self._string(schema, name, rng, concept)

    def _resolve(self, schema: dict[str, Any]) -> dict[str, Any]:
        ref = schema.get("$ref")
        if not isinstance(ref, str) or not ref.startswith("#/"):
            return schema
        node: Any = self.root_schema
        for part in ref[2:].split("/"):
            node = node.get(part, {}) if isinstance(node, dict) else {}
        return self._resolve(node) if isinstance(node, dict) else {}

    def _object(
        self, schema: dict[str, Any], path: str, concept: Concept, index: int
    ) -> dict[str, Any]:
        rng = self.rng(path)
        props: dict[str, Any] = schema.get("properties", {})
        # Claude fills the required fields and, usually, the optional ones too.
        names = list(props) + [r for r in schema.get("required", []) if r not in props]
        for attempt in range(20):
            concept = Concept.pick(
                rng, index + attempt, int(self.digest[:8], 16), avoid=self.facets.theme
            )
            made = {
                prop: self.value(
                    props.get(prop, {"type": "string"}), prop, f"{path}.{prop}", concept
                )
                for prop in names
            }
            # A design never repeats a title listed as made, nor one of the same answer.
            title = made.get("title")
            if not isinstance(title, str) or title not in self.titles:
                break
        if isinstance(made.get("title"), str):
            self.titles.add(made["title"])
        return made

    def _array(self, schema: dict[str, Any], name: str, path: str, concept: Concept) -> list[Any]:
        rng = self.rng(path)
        tagging = _is_tag_field(name)
        low = int(schema.get("minItems", 1 if not tagging else 5))
        high = int(schema.get("maxItems", max(low, 13 if tagging else 3)))
        count = max(low, min(high, 10)) if tagging else rng.randint(low, max(low, high))
        if not tagging and "maxItems" not in schema and self.facets.wanted:
            count = max(low, self.facets.wanted)  # as many as the message asks for
        items = self._resolve(schema.get("items", {"type": "string"}))
        if tagging and items.get("type", "string") == "string":
            return self._tags(items, rng, concept, count)
        out: list[Any] = []
        for i in range(count):
            item_path = f"{path}[{i}]"
            if self._resolve(items).get("type") == "object":
                out.append(self._object(items, item_path, concept, index=i))
            else:
                out.append(self.value(items, name, item_path, concept))
        return out

    def _tags(
        self, items: dict[str, Any], rng: random.Random, concept: Concept, count: int
    ) -> list[str]:
        f = self.facets
        theme_word = (f.theme.split() or ["art"])[-1]
        pool = [
            f.theme,
            f.style,
            f.niche,
            f"{theme_word} gift",
            f"{f.style} {theme_word}" if f.style else "",
            f"{concept.motif.split()[-1]} art",
            f"{concept.adjective.lower()} {theme_word}",
            concept.product.lower(),
            f"{concept.palette.split()[-1]} {theme_word}",
            f"gift for {f.niche.split()[-1]}" if f.niche else "",
            *f.keywords[:4],
            *GENERIC_TAGS,
        ]
        limit = int(items.get("maxLength", 20))
        tags: list[str] = []
        for tag in pool:
            tag = _shorten(tag.lower(), limit)
            if tag and tag not in tags:
                tags.append(tag)
        # Keep the most specific tags first and shuffle the generic tail for variety.
        head, tail = tags[:4], tags[4:]
        rng.shuffle(tail)
        return (head + tail)[:count]

    def _string(
        self, schema: dict[str, Any], name: str, rng: random.Random, concept: Concept
    ) -> str:
        f, c = self.facets, concept
        key = name.lower()
        niche = f.niche or "everyone"
        style = f.style or c.adjective.lower()
        if "negative" in key:
            text = ", ".join(rng.sample(NEGATIVES, 6))
        elif "prompt" in key:
            text = (
                f"{style} {c.motif} illustration of {f.theme}, {c.palette} palette, "
                f"{c.composition}, appealing to {niche}, clean vector edges, high contrast, "
                "print-ready, isolated on a plain background"
            )
        elif "title" in key or key == "name":
            text = (
                f"{c.adjective} {_titlecase(f.theme)} {c.product} - {_titlecase(style)} "
                f"{_titlecase(c.motif)} Gift for {_titlecase(niche)}"
            )
        elif "desc" in key:
            text = (
                f"Celebrate {f.theme} with this {c.adjective.lower()} {style} design. "
                f"It features {c.motif} artwork in {_article(c.palette)} {c.palette} palette "
                f"and makes a thoughtful gift for {niche}. Printed on demand with vibrant, "
                "long-lasting colors."
            )
        elif _is_tag_field(key):
            text = f"{f.theme} {c.motif.split()[-1]}"
        elif key in ("theme", "style", "niche"):
            text = getattr(f, key) or f.keywords[0]
        else:
            text = f"{c.adjective} {f.theme} {c.motif}"
        text = _shorten(text, int(schema.get("maxLength", 10_000)))
        return text.ljust(int(schema.get("minLength", 0)), ".")

    def reply_text(self, concept_count: int = 3) -> str:
        """A plain-text answer: a few design ideas for what the user asked about."""
        base = int(self.digest[:8], 16)
        lines = [f"Here are some print-on-demand ideas for {self.facets.theme}:"]
        for i in range(concept_count):
            c = Concept.pick(self.rng(f"text[{i}]"), i, base)
            lines.append(
                f"{i + 1}. A {c.adjective.lower()} {c.motif} {c.product.lower()} design in "
                f"{_article(c.palette)} {c.palette} palette."
            )
        return "\n".join(lines)


def _is_tag_field(name: str) -> bool:
    return "tag" in name.lower() or "keyword" in name.lower()


def _article(word: str) -> str:
    return "an" if word[:1].lower() in "aeiou" else "a"


def _titlecase(text: str) -> str:
    return " ".join(w[:1].upper() + w[1:] for w in text.split())


def _shorten(text: str, limit: int) -> str:
    """Cut ``text`` to ``limit`` characters at a word boundary when there is one."""
    text = re.sub(r"\s+", " ", text).strip()
    if len(text) <= limit:
        return text
    cut = text[:limit]
    if text[limit] != " " and " " in cut[1:]:
        cut = cut.rsplit(" ", 1)[0]  # drop the partial last word
    return cut.rstrip(" -,;:|")


def user_text(messages: list[dict[str, Any]]) -> str:
    """All text the user wrote (string contents and text blocks)."""
    parts: list[str] = []
    for message in messages:
        if message.get("role") != "user":
            continue
        content = message.get("content")
        if isinstance(content, str):
            parts.append(content)
        elif isinstance(content, list):
            parts.extend(
                str(b.get("text", "")) for b in content if isinstance(b, dict) and "text" in b
            )
    return "\n".join(parts)


def _tokens(value: object) -> int:
    # About four characters per token, as a rough stand-in for the real tokenizer.
    text = value if isinstance(value, str) else json.dumps(value)
    return max(1, math.ceil(len(text) / 4))


# Prompt caching: a prefix shorter than this is not cached (Sonnet's and Opus' minimum), and a
# cached prefix lives this long after its last use.
MIN_CACHEABLE_TOKENS = 1024
CACHE_TTL_S = 300.0


def cached_prefix(body: dict[str, Any]) -> list[Any] | None:
    """The part of the prompt a ``cache_control`` breakpoint marks for caching (tools, then
    system blocks, up to the last marked one), or None when nothing is marked."""
    blocks: list[Any] = list(body.get("tools") or [])
    system = body.get("system")
    if isinstance(system, list):
        blocks += system
    marked = [i for i, b in enumerate(blocks) if isinstance(b, dict) and b.get("cache_control")]
    return blocks[: marked[-1] + 1] if marked else None


def build_message(body: dict[str, Any]) -> dict[str, Any]:
    """The ``message`` object answering a validated request body."""
    text = user_text(body["messages"])
    tools: list[dict[str, Any]] = body.get("tools") or []
    choice = body.get("tool_choice") or {"type": "auto"}
    max_tokens: int = body["max_tokens"]
    content: list[dict[str, Any]]
    marker = os.environ.get("SIM_ANTHROPIC_REFUSE_MARKER", REFUSE_MARKER)
    if marker and marker in text:
        # The model declines: a 200 with no tool call; a retry gets the same answer.
        content, stop_reason = [], "refusal"
    elif tools and choice.get("type") != "none":
        tool = next((t for t in tools if t["name"] == choice.get("name")), tools[0])
        tool_input = Generator(text, tool["input_schema"], salt=tool["name"]).generate()
        content = [
            {"type": "tool_use", "id": _new_id("toolu_"), "name": tool["name"], "input": tool_input}
        ]
        stop_reason = "tool_use"
        if _tokens(tool_input) > max_tokens:
            # Like the real API, an answer cut short by max_tokens leaves the tool input incomplete.
            content[0]["input"] = {}
            stop_reason = "max_tokens"
    else:
        reply = Generator(text).reply_text()
        stop_reason = "end_turn"
        if _tokens(reply) > max_tokens:
            reply, stop_reason = reply[: max_tokens * 4], "max_tokens"
        content = [{"type": "text", "text": reply}]
    output_tokens = min(max_tokens, _tokens(content))
    return {
        "id": _new_id("msg_"),
        "type": "message",
        "role": "assistant",
        "model": body["model"],
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": {
            "input_tokens": _tokens([body.get("system", ""), body["messages"], tools]),
            "output_tokens": output_tokens,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
        },
    }


# ---------------------------------------------------------------------------------------------
# The app
# ---------------------------------------------------------------------------------------------


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


def _credential(request: Request) -> str:
    """The caller's API key: ``x-api-key``, or ``Authorization: Bearer`` as newer SDKs send it."""
    key = request.headers.get("x-api-key", "").strip()
    if not key:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        key = token.strip() if scheme.lower() == "bearer" else ""
    # Rate limits are kept per key; keep a digest, not the secret itself.
    return hashlib.sha256(key.encode()).hexdigest() if key else ""


def _keys_from_env() -> frozenset[str]:
    """Digests of the keys ``SIM_ANTHROPIC_KEYS`` lists (empty: any non-empty key is valid)."""
    raw = os.environ.get("SIM_ANTHROPIC_KEYS", "")
    return frozenset(
        hashlib.sha256(k.strip().encode()).hexdigest() for k in raw.split(",") if k.strip()
    )


def _rpm_from_env() -> int:
    raw = os.environ.get("SIM_ANTHROPIC_RPM", "").strip()
    try:
        return int(raw) if raw else 0
    except ValueError as exc:
        raise SystemExit(f"SIM_ANTHROPIC_RPM: expected an integer, got {raw!r}") from exc


def create_app(knobs: Knobs | None = None, *, rpm: int | None = None) -> FastAPI:
    """The simulator app; ``rpm`` (default ``SIM_ANTHROPIC_RPM``) limits requests per API key."""
    if knobs is None:
        knobs = Knobs.from_env("anthropic")
        knobs.fault_statuses = ANTHROPIC_FAULT_STATUSES
    rpm = _rpm_from_env() if rpm is None else rpm
    limiter = SlidingWindowLimiter(rpm, 60.0) if rpm > 0 else None
    valid_keys = _keys_from_env()
    books = Books()
    cache: dict[str, float] = {}  # cached prompt prefix -> when it expires (monotonic)
    app = FastAPI(title="Anthropic Messages API simulator")
    install_faults(app, knobs, fault)

    def refuse(status: int, message: str, retry_after: float | None = None) -> JSONResponse:
        books.errors[error_type_for(status)] += 1
        return anthropic_error(status, message, retry_after=retry_after)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_request: Request, exc: StarletteHTTPException) -> Response:
        # Unknown routes and methods answer in Anthropic's format too, not FastAPI's.
        return refuse(exc.status_code, str(exc.detail))

    def unauthorized(api_key: str) -> JSONResponse | None:
        if not api_key:
            return refuse(401, "x-api-key header is required")
        if valid_keys and not any(hmac.compare_digest(api_key, k) for k in valid_keys):
            return refuse(401, "invalid x-api-key")
        return None

    @app.post("/v1/messages")
    async def messages(request: Request) -> Response:
        api_key = _credential(request)
        if (refused := unauthorized(api_key)) is not None:
            return refused
        if not request.headers.get("anthropic-version", "").strip():
            return refuse(400, "anthropic-version: header is required")
        if limiter is not None:
            wait = limiter.check(api_key)
            if wait is not None:
                return refuse(429, ERROR_MESSAGES[429], retry_after=wait)
        try:
            body = _validate_body(json.loads(await request.body() or b"null"))
        except json.JSONDecodeError:
            return refuse(400, "body: the request body is not valid JSON")
        except InvalidRequest as exc:
            return refuse(exc.status, exc.message)
        message = build_message(body)
        prefix = cached_prefix(body)
        if prefix is not None and _tokens(prefix) >= MIN_CACHEABLE_TOKENS:
            usage, size = message["usage"], _tokens(prefix)
            key = hashlib.sha256(f"{api_key}\x00{body['model']}\x00".encode()).hexdigest()
            key += hashlib.sha256(json.dumps(prefix, sort_keys=True).encode()).hexdigest()
            now = time.monotonic()
            hit = cache.get(key, 0.0) > now
            usage["cache_read_input_tokens" if hit else "cache_creation_input_tokens"] = size
            usage["input_tokens"] = max(0, usage["input_tokens"] - size)
            cache[key] = now + CACHE_TTL_S
        books.requests += 1
        books.input_tokens += message["usage"]["input_tokens"]
        books.output_tokens += message["usage"]["output_tokens"]
        return JSONResponse(message, headers={"request-id": _new_id("req_")})

    @app.get("/v1/models")
    async def list_models(request: Request) -> Response:
        if (refused := unauthorized(_credential(request))) is not None:
            return refused
        data = [model_info(m) for m in _models()]
        return JSONResponse(
            {
                "data": data,
                "has_more": False,
                "first_id": data[0]["id"] if data else None,
                "last_id": data[-1]["id"] if data else None,
            }
        )

    @app.get("/v1/models/{model_id}")
    async def get_model(request: Request, model_id: str) -> Response:
        if (refused := unauthorized(_credential(request))) is not None:
            return refused
        if model_id not in _models():
            return refuse(404, f"model: {model_id}")
        return JSONResponse(model_info(model_id), headers={"request-id": _new_id("req_")})

    @app.get("/_sim/books")
    async def _books() -> dict[str, object]:
        return books.as_dict()

    return app


def main() -> None:
    """Entry point: ``python -m simulators.anthropic [--host H] [--port N]``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8190)
    args = parser.parse_args()
    serve(create_app(), args.host, args.port)


if __name__ == "__main__":
    main()
