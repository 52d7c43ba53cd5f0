"""The Anthropic simulator over real HTTP: wire format, tool use, errors, rate limit, faults."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from simulators.process import SimulatorProcess
from tests.support.infra import free_port

HEADERS = {"x-api-key": "sk-ant-test-key", "anthropic-version": "2023-06-01"}
# Pin the knobs so a SIM_* variable in the caller's environment cannot change the results.
QUIET_ENV = {
    "SIM_ANTHROPIC_FAILURE_RATE": "0",
    "SIM_ANTHROPIC_LATENCY_MS": "0",
    "SIM_ANTHROPIC_TIMEOUT_SHARE": "0",
    "SIM_ANTHROPIC_RPM": "0",
}

BRIEF_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "prompt": {"type": "string"},
        "negative_prompt": {"type": "string"},
        "title": {"type": "string", "maxLength": 140},
        "description": {"type": "string"},
        "tags": {
            "type": "array",
            "items": {"type": "string", "maxLength": 20},
            "maxItems": 13,
        },
        "mood": {"type": "string", "enum": ["calm", "playful", "bold"]},
        "variant": {"type": "integer", "minimum": 1, "maximum": 4},
    },
    "required": ["prompt", "negative_prompt", "title", "description", "tags", "mood", "variant"],
}


@pytest.fixture(scope="module")
def sim() -> Iterator[SimulatorProcess]:
    with SimulatorProcess("anthropic", free_port(), env=QUIET_ENV) as proc:
        yield proc


@pytest.fixture(scope="module")
def limited_sim() -> Iterator[SimulatorProcess]:
    with SimulatorProcess(
        "anthropic", free_port(), env={**QUIET_ENV, "SIM_ANTHROPIC_RPM": "3"}
    ) as p:
        yield p


def designs_tool(count: int) -> dict[str, Any]:
    return {
        "name": "submit_designs",
        "description": "Submit the designs.",
        "input_schema": {
            "type": "object",
            "properties": {
                "designs": {
                    "type": "array",
                    "items": BRIEF_SCHEMA,
                    "minItems": count,
                    "maxItems": count,
                }
            },
            "required": ["designs"],
        },
    }


def tool_request(theme: str, count: int = 3, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": "claude-sonnet-4-5",
        "max_tokens": 8000,
        "messages": [
            {
                "role": "user",
                "content": f"Theme: {theme}\nStyle: watercolor\nNiche: dog lovers\n"
                f"Number of designs: {count}",
            }
        ],
        "tools": [designs_tool(count)],
        "tool_choice": {"type": "tool", "name": "submit_designs"},
    }
    body.update(extra)
    return body


def post(sim: SimulatorProcess, body: object, headers: dict[str, str] = HEADERS) -> httpx.Response:
    return httpx.post(f"{sim.url}/v1/messages", json=body, headers=headers, timeout=10)


def assert_error(resp: httpx.Response, status: int, error_type: str) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert body["type"] == "error"
    assert body["error"]["type"] == error_type
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    assert resp.headers["request-id"].startswith("req_")
    assert body["request_id"] == resp.headers["request-id"]
    return body


def test_text_message_has_documented_shape(sim: SimulatorProcess) -> None:
    resp = post(
        sim,
        {
            "model": "claude-sonnet-4-5",
            "max_tokens": 500,
            "messages": [{"role": "user", "content": "Ideas for surfing corgis?"}],
        },
    )
    assert resp.status_code == 200, resp.text
    assert resp.headers["request-id"].startswith("req_")
    msg = resp.json()
    assert set(msg) == {
        "id",
        "type",
        "role",
        "model",
        "content",
        "stop_reason",
        "stop_sequence",
        "usage",
    }
    assert msg["id"].startswith("msg_")
    assert (msg["type"], msg["role"], msg["model"]) == ("message", "assistant", "claude-sonnet-4-5")
    assert msg["stop_reason"] == "end_turn"
    assert msg["stop_sequence"] is None
    assert [b["type"] for b in msg["content"]] == ["text"]
    assert "surfing" in msg["content"][0]["text"]
    assert msg["usage"]["input_tokens"] > 0 and msg["usage"]["output_tokens"] > 0


def test_text_answer_is_cut_at_max_tokens(sim: SimulatorProcess) -> None:
    resp = post(
        sim,
        {
            "model": "claude-sonnet-4-5",
            "max_tokens": 5,
            "messages": [{"role": "user", "content": "Ideas for surfing corgis?"}],
        },
    )
    msg = resp.json()
    assert msg["stop_reason"] == "max_tokens"
    assert len(msg["content"][0]["text"]) <= 20
    assert msg["usage"]["output_tokens"] <= 5


def test_forced_tool_input_matches_schema(sim: SimulatorProcess) -> None:
    resp = post(sim, tool_request("beach dogs", count=4))
    assert resp.status_code == 200, resp.text
    msg = resp.json()
    assert msg["stop_reason"] == "tool_use"
    [block] = msg["content"]
    assert block["type"] == "tool_use"
    assert block["id"].startswith("toolu_")
    assert block["name"] == "submit_designs"
    designs = block["input"]["designs"]
    assert len(designs) == 4
    for d in designs:
        assert set(d) == set(BRIEF_SCHEMA["required"])
        for key in ("prompt", "negative_prompt", "title", "description"):
            assert isinstance(d[key], str) and d[key].strip()
        assert len(d["title"]) <= 140
        assert 1 <= len(d["tags"]) <= 13
        assert all(isinstance(t, str) and 0 < len(t) <= 20 for t in d["tags"])
        assert d["mood"] in ("calm", "playful", "bold")
        assert isinstance(d["variant"], int) and 1 <= d["variant"] <= 4
        # The copy reads like it was written for this request.
        assert "beach dogs" in d["prompt"]
        assert "watercolor" in d["prompt"].lower()
        assert "beach dogs" in d["title"].lower()
        assert "beach dogs" in d["tags"]


def test_each_design_gets_its_own_strings(sim: SimulatorProcess) -> None:
    designs = post(sim, tool_request("beach dogs", count=5)).json()["content"][0]["input"][
        "designs"
    ]
    for key in ("prompt", "title", "description"):
        assert len({d[key] for d in designs}) == 5, key


def test_titles_listed_as_already_made_are_not_repeated(sim: SimulatorProcess) -> None:
    # A large job is briefed in batches, each told the titles before it (as Claude is).
    made: list[str] = []
    for _ in range(4):
        body = tool_request("beach dogs", count=25)
        if made:
            body["messages"][0]["content"] += (
                "\n\nDesigns already made for this job (do not repeat or closely echo them):\n"
                + "\n".join(f"- {t}" for t in made)
            )
        designs = post(sim, body).json()["content"][0]["input"]["designs"]
        made += [d["title"] for d in designs]
    assert len(made) == 100 and len(set(made)) == 100


def test_content_varies_with_theme_and_is_deterministic(sim: SimulatorProcess) -> None:
    def designs(theme: str) -> list[dict[str, Any]]:
        resp = post(sim, tool_request(theme))
        return list(resp.json()["content"][0]["input"]["designs"])

    dogs, cats = designs("beach dogs"), designs("space cats")
    assert [d["prompt"] for d in dogs] != [d["prompt"] for d in cats]
    assert all("space cats" in d["prompt"] for d in cats)
    assert designs("beach dogs") == dogs


def test_tool_choice_any_and_auto_answer_with_tool(sim: SimulatorProcess) -> None:
    for choice in ({"type": "any"}, {"type": "auto"}):
        msg = post(sim, tool_request("owls", tool_choice=choice)).json()
        assert msg["stop_reason"] == "tool_use", choice
        assert msg["content"][0]["type"] == "tool_use"


def test_schema_refs_are_resolved(sim: SimulatorProcess) -> None:
    # Schemas generated by pydantic use $defs/$ref; the input must still conform.
    schema = {
        "type": "object",
        "$defs": {"Item": {"type": "object", "properties": {"name": {"type": "string"}}}},
        "properties": {
            "items": {"type": "array", "items": {"$ref": "#/$defs/Item"}, "minItems": 2}
        },
        "required": ["items"],
    }
    body = tool_request("owls")
    body["tools"] = [{"name": "t", "input_schema": schema}]
    body["tool_choice"] = {"type": "tool", "name": "t"}
    items = post(sim, body).json()["content"][0]["input"]["items"]
    assert len(items) >= 2
    assert all(isinstance(i["name"], str) and i["name"] for i in items)


@pytest.mark.parametrize("field", ["model", "max_tokens", "messages"])
def test_missing_field_is_400_naming_it(sim: SimulatorProcess, field: str) -> None:
    body = tool_request("owls")
    del body[field]
    err = assert_error(post(sim, body), 400, "invalid_request_error")
    assert field in err["error"]["message"]


def test_unknown_tool_choice_is_400(sim: SimulatorProcess) -> None:
    body = tool_request("owls", tool_choice={"type": "tool", "name": "nope"})
    err = assert_error(post(sim, body), 400, "invalid_request_error")
    assert "tool_choice" in err["error"]["message"]


def test_unknown_model_is_404(sim: SimulatorProcess) -> None:
    assert_error(post(sim, tool_request("owls", model="gpt-4")), 404, "not_found_error")
    # A Claude-looking name the account does not have is unknown too.
    missing = post(sim, tool_request("owls", model="claude-sonnet-9-9"))
    assert_error(missing, 404, "not_found_error")
    assert "claude-sonnet-9-9" in missing.json()["error"]["message"]


def test_models_are_listed_and_looked_up(sim: SimulatorProcess) -> None:
    listed = httpx.get(f"{sim.url}/v1/models", headers=HEADERS).json()
    ids = [m["id"] for m in listed["data"]]
    assert "claude-sonnet-4-6" in ids and listed["has_more"] is False
    one = httpx.get(f"{sim.url}/v1/models/claude-sonnet-4-6", headers=HEADERS)
    assert one.status_code == 200
    assert one.json()["type"] == "model" and one.json()["id"] == "claude-sonnet-4-6"
    assert_error(
        httpx.get(f"{sim.url}/v1/models/claude-sonnet-9-9", headers=HEADERS), 404, "not_found_error"
    )
    assert httpx.get(f"{sim.url}/v1/models").status_code == 401


def test_a_request_against_the_usage_policy_is_refused(sim: SimulatorProcess) -> None:
    resp = post(sim, tool_request("sim:refuse owls"))
    assert resp.status_code == 200
    body = resp.json()
    assert body["stop_reason"] == "refusal" and body["content"] == []


def test_missing_api_key_is_401(sim: SimulatorProcess) -> None:
    headers = {"anthropic-version": "2023-06-01"}
    assert_error(post(sim, tool_request("owls"), headers=headers), 401, "authentication_error")


def test_bearer_key_is_accepted_like_sdk_2_sends_it(sim: SimulatorProcess) -> None:
    headers = {"authorization": "Bearer sk-ant-test-key", "anthropic-version": "2023-06-01"}
    assert post(sim, tool_request("owls"), headers=headers).status_code == 200
    headers["authorization"] = "Basic abc"
    assert_error(post(sim, tool_request("owls"), headers=headers), 401, "authentication_error")


def test_missing_version_header_is_400(sim: SimulatorProcess) -> None:
    headers = {"x-api-key": "k"}
    err = assert_error(
        post(sim, tool_request("owls"), headers=headers), 400, "invalid_request_error"
    )
    assert "anthropic-version" in err["error"]["message"]


def test_rate_limit_per_key_with_retry_after(limited_sim: SimulatorProcess) -> None:
    body = tool_request("owls", count=1)
    for _ in range(3):
        assert post(limited_sim, body).status_code == 200
    resp = post(limited_sim, body)
    assert_error(resp, 429, "rate_limit_error")
    assert 1 <= int(resp.headers["retry-after"]) <= 60
    # The limit is per API key: another key still gets through.
    other = {**HEADERS, "x-api-key": "sk-ant-other-key"}
    assert post(limited_sim, body, headers=other).status_code == 200


def test_injected_faults_use_anthropic_error_format(sim: SimulatorProcess) -> None:
    config = f"{sim.url}/_sim/config"
    before = httpx.get(f"{sim.url}/_sim/faults").json()
    try:
        httpx.post(config, json={"failure_rate": 1.0}).raise_for_status()
        seen: set[int] = set()
        for _ in range(30):
            resp = post(sim, tool_request("owls"))
            expected = {429: "rate_limit_error", 500: "api_error", 529: "overloaded_error"}
            assert resp.status_code in expected, resp.text
            assert_error(resp, resp.status_code, expected[resp.status_code])
            if resp.status_code == 429:
                assert int(resp.headers["retry-after"]) >= 1
            seen.add(resp.status_code)
        assert len(seen) >= 2  # the default mix is more than one status
        httpx.post(config, json={"fault_statuses": [529]}).raise_for_status()
        assert_error(post(sim, tool_request("owls")), 529, "overloaded_error")
    finally:
        httpx.post(config, json={"failure_rate": 0.0, "fault_statuses": [500, 529, 429]})
    after = httpx.get(f"{sim.url}/_sim/faults").json()
    assert sum(after.values()) - sum(before.values()) == 31
    assert post(sim, tool_request("owls")).status_code == 200


def test_books_count_requests_and_tokens(sim: SimulatorProcess) -> None:
    before = httpx.get(f"{sim.url}/_sim/books").json()
    msg = post(sim, tool_request("owls")).json()
    after = httpx.get(f"{sim.url}/_sim/books").json()
    assert after["requests"] == before["requests"] + 1
    assert after["output_tokens"] - before["output_tokens"] == msg["usage"]["output_tokens"]
    assert after["input_tokens"] - before["input_tokens"] == msg["usage"]["input_tokens"]


def test_a_long_marked_prefix_is_cached_and_a_short_one_is_not(sim: SimulatorProcess) -> None:
    def call(system_text: str, key: str) -> dict[str, int]:
        body = tool_request("owls")
        body["system"] = [
            {"type": "text", "text": system_text, "cache_control": {"type": "ephemeral"}}
        ]
        resp = post(sim, body, headers={**HEADERS, "x-api-key": key})
        assert resp.status_code == 200, resp.text
        return dict(resp.json()["usage"])

    long_text = "You write listing copy for a print-on-demand shop. " * 120  # ~1500 tokens
    first, second = call(long_text, "k-cache-1"), call(long_text, "k-cache-1")
    assert first["cache_creation_input_tokens"] >= 1024 and first["cache_read_input_tokens"] == 0
    assert second["cache_read_input_tokens"] == first["cache_creation_input_tokens"]
    assert second["cache_creation_input_tokens"] == 0
    assert second["input_tokens"] == first["input_tokens"]  # the rest is billed in full
    other_key = call(long_text, "k-cache-2")  # another account's cache is its own
    assert other_key["cache_creation_input_tokens"] == first["cache_creation_input_tokens"]
    short = [call("Be brief.", "k-cache-1") for _ in range(2)]  # under the 1024-token minimum
    assert all(u["cache_creation_input_tokens"] == u["cache_read_input_tokens"] == 0 for u in short)


def test_strict_tools_take_only_the_supported_schema_subset(sim: SimulatorProcess) -> None:
    from shared.adapters.vendors.claude import designs_tool as engine_tool

    # The engine's own strict tool is accepted, and the answer has the asked-for count.
    strict = tool_request("owls", count=4, tools=[engine_tool(4)])
    resp = post(sim, strict)
    assert resp.status_code == 200, resp.text
    assert len(resp.json()["content"][0]["input"]["designs"]) == 4
    # The same schema with its bounds is refused under strict, naming the keyword.
    for keyword, value in (("minItems", 4), ("maxItems", 4)):
        tool = engine_tool(4)
        tool["input_schema"]["properties"]["designs"][keyword] = value
        refused = post(sim, tool_request("owls", tools=[tool]))
        assert_error(refused, 400, "invalid_request_error")
        assert keyword in refused.json()["error"]["message"]
    unclosed = engine_tool(2)
    del unclosed["input_schema"]["properties"]["designs"]["items"]["additionalProperties"]
    refused = post(sim, tool_request("owls", tools=[unclosed]))
    assert_error(refused, 400, "invalid_request_error")
    assert "additionalProperties" in refused.json()["error"]["message"]
