"""The ``message`` answering a request: text or a tool call, cut at ``max_tokens``, with its
usage; and which prefix of the prompt a ``cache_control`` breakpoint marks."""

from __future__ import annotations

import json
import math
from typing import Any

from simulators.anthropic.errors import new_id
from simulators.anthropic.generator import Generator, user_text
from simulators.anthropic.judge import is_risk_review, judge

# A user message containing this makes the model decline (``stop_reason: "refusal"``), as Claude
# does for a request against its usage policy (``SIM_ANTHROPIC_REFUSE_MARKER``).
REFUSE_MARKER = "sim:refuse"


def tokens(value: object) -> int:
    # About four characters per token, as a rough stand-in for the real tokenizer.
    text = value if isinstance(value, str) else json.dumps(value)
    return max(1, math.ceil(len(text) / 4))


def cached_prefix(body: dict[str, Any]) -> list[Any] | None:
    """The part of the prompt a ``cache_control`` breakpoint marks for caching (tools, then
    system blocks, up to the last marked one), or None when nothing is marked."""
    blocks: list[Any] = list(body.get("tools") or [])
    system = body.get("system")
    if isinstance(system, list):
        blocks += system
    marked = [i for i, b in enumerate(blocks) if isinstance(b, dict) and b.get("cache_control")]
    return blocks[: marked[-1] + 1] if marked else None


def build_message(body: dict[str, Any], refuse_marker: str) -> dict[str, Any]:
    """The ``message`` object answering a validated request body."""
    text = user_text(body["messages"])
    tools: list[dict[str, Any]] = body.get("tools") or []
    choice = body.get("tool_choice") or {"type": "auto"}
    max_tokens: int = body["max_tokens"]
    content: list[dict[str, Any]]
    marker = refuse_marker
    if marker and marker in text:
        # The model declines: a 200 with no tool call; a retry gets the same answer.
        content, stop_reason = [], "refusal"
    elif tools and choice.get("type") != "none":
        tool = next((t for t in tools if t["name"] == choice.get("name")), tools[0])
        schema = tool["input_schema"]
        if is_risk_review(schema):
            # A review is a judgement of the text, not made-up values (see judge).
            tool_input = judge(text, schema, salt=tool["name"])
        else:
            tool_input = Generator(text, schema, salt=tool["name"]).generate()
        content = [
            {"type": "tool_use", "id": new_id("toolu_"), "name": tool["name"], "input": tool_input}
        ]
        stop_reason = "tool_use"
        if tokens(tool_input) > max_tokens:
            # Like the real API, an answer cut short by max_tokens leaves the tool input incomplete.
            content[0]["input"] = {}
            stop_reason = "max_tokens"
    else:
        reply = Generator(text).reply_text()
        stop_reason = "end_turn"
        if tokens(reply) > max_tokens:
            reply, stop_reason = reply[: max_tokens * 4], "max_tokens"
        content = [{"type": "text", "text": reply}]
    output_tokens = min(max_tokens, tokens(content))
    return {
        "id": new_id("msg_"),
        "type": "message",
        "role": "assistant",
        "model": body["model"],
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": {
            "input_tokens": tokens([body.get("system", ""), body["messages"], tools]),
            "output_tokens": output_tokens,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
        },
    }
