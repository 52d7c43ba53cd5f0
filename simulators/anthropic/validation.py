"""The checks the Messages API makes of a request body; each raises :class:`InvalidRequest`
with the field and the documented message."""

from __future__ import annotations

import re
from typing import Any

from simulators.anthropic.errors import InvalidRequest
from simulators.anthropic.models import Models

_TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,128}$")


def validate_body(body: object, models: Models) -> dict[str, Any]:
    """Check the fields the Messages API requires; raise :class:`InvalidRequest` naming one."""
    if not isinstance(body, dict):
        raise InvalidRequest("body: Input should be a valid dictionary")
    for name in ("model", "max_tokens", "messages"):
        if name not in body:
            raise InvalidRequest(f"{name}: Field required")
    model = body["model"]
    if not isinstance(model, str) or not model.strip():
        raise InvalidRequest("model: Input should be a non-empty string")
    if model not in models:
        raise InvalidRequest(f"model: {model}", status=404)
    max_tokens = body["max_tokens"]
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
        raise InvalidRequest("max_tokens: Input should be an integer greater than or equal to 1")
    if body.get("stream"):
        raise InvalidRequest("stream: streaming is not supported by this simulator")
    _validate_messages(body["messages"])
    _validate_tools(body.get("tools"), body.get("tool_choice"))
    return body


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


def _validate_tool(i: int, tool: object) -> str:
    """One offered tool; its name."""
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
    return name


def _validate_tools(tools: object, tool_choice: object) -> None:
    if tools is None:
        if tool_choice is not None and _choice_type(tool_choice) != "none":
            raise InvalidRequest("tool_choice: may only be specified while providing tools")
        return
    if not isinstance(tools, list):
        raise InvalidRequest("tools: Input should be a valid list")
    names = {_validate_tool(i, tool) for i, tool in enumerate(tools)}
    if tool_choice is None:
        return
    kind = _choice_type(tool_choice)
    if kind not in ("auto", "any", "tool", "none"):
        raise InvalidRequest("tool_choice.type: Input should be 'auto', 'any', 'tool' or 'none'")
    if kind == "tool":
        wanted = tool_choice.get("name") if isinstance(tool_choice, dict) else None
        if wanted not in names:
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
