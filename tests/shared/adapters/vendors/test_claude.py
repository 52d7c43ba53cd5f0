"""The real ClaudeClient (official SDK) against the Anthropic simulator over HTTP."""

from __future__ import annotations

import json
import logging
import traceback
from collections.abc import AsyncIterator, Iterator
from typing import TypedDict

import httpx
import httpx2
import pytest

from shared.adapters.vendors.claude import (
    TAG_LEN_MAX,
    TAGS_MAX,
    TITLE_MAX,
    ClaudeClient,
    CreativeBrief,
    TokenUsage,
    briefs_from_tool_input,
    designs_tool,
)
from shared.platform.errors import (
    ConfigError,
    PermanentError,
    PodError,
    RateLimited,
    RetryableError,
    VendorTimeout,
)
from simulators import anthropic as anthropic_sim
from simulators.common import Knobs
from simulators.process import SimulatorProcess
from tests.support.infra import free_port

# The SDK warns that the brief's default model is deprecated; that noise is not under test.

SECRET = "sk-ant-api03-SECRET-do-not-leak-0123456789"
QUIET_ENV = {
    "SIM_ANTHROPIC_FAILURE_RATE": "0",
    "SIM_ANTHROPIC_LATENCY_MS": "0",
    "SIM_ANTHROPIC_TIMEOUT_SHARE": "0",
    "SIM_ANTHROPIC_RPM": "0",
}


class Job(TypedDict):
    """The job facets ``write_briefs`` takes as keywords."""

    theme: str
    style: str
    niche: str


JOB: Job = {"theme": "cozy autumn cats", "style": "watercolor", "niche": "cat moms"}


@pytest.fixture(scope="module")
def sim() -> Iterator[SimulatorProcess]:
    with SimulatorProcess("anthropic", free_port(), env=QUIET_ENV) as proc:
        yield proc


@pytest.fixture
async def client(sim: SimulatorProcess) -> AsyncIterator[ClaudeClient]:
    c = ClaudeClient(api_key=SECRET, base_url=sim.url, timeout_s=10, max_retries=0)
    try:
        yield c
    finally:
        await c.aclose()


@pytest.fixture
def faults(sim: SimulatorProcess) -> Iterator[dict[str, str]]:
    """Lets a test change the simulator's knobs; always restores them afterwards."""
    yield {"config": f"{sim.url}/_sim/config", "faults": f"{sim.url}/_sim/faults"}
    httpx.post(
        f"{sim.url}/_sim/config",
        json={"failure_rate": 0.0, "latency_ms": 0.0, "fault_statuses": [500, 529, 429]},
    ).raise_for_status()


def set_knobs(sim: SimulatorProcess, **knobs: object) -> None:
    httpx.post(f"{sim.url}/_sim/config", json=knobs).raise_for_status()


def injected(sim: SimulatorProcess) -> int:
    return sum(httpx.get(f"{sim.url}/_sim/faults").json().values())


def assert_no_secret(err: BaseException) -> None:
    texts = [str(err), repr(err), "".join(traceback.format_exception(err))]
    if isinstance(err, PodError):
        texts.append(err.describe())
    for text in texts:
        assert SECRET not in text


async def test_returns_count_valid_briefs(client: ClaudeClient) -> None:
    briefs = await client.write_briefs(**JOB, count=4, job_id="job-1")
    assert len(briefs) == 4
    for b in briefs:
        assert isinstance(b, CreativeBrief)
        assert b.prompt and b.negative_prompt and b.description
        assert 0 < len(b.title) <= TITLE_MAX
        assert 0 < len(b.tags) <= TAGS_MAX
        assert len(set(b.tags)) == len(b.tags)
        assert all(t == t.lower().strip() and 0 < len(t) <= TAG_LEN_MAX for t in b.tags)
        # The simulator writes from the request, so the job's facets show up in the copy.
        assert "cozy autumn cats" in b.prompt and "watercolor" in b.prompt


async def test_tokens_of_every_call_add_up(client: ClaudeClient) -> None:
    usage = TokenUsage()
    await client.write_briefs(**JOB, count=2, usage=usage)
    once = (usage.input, usage.output)
    await client.write_briefs(**JOB, count=2, usage=usage)
    assert once[0] > 0 and once[1] > 0
    assert (usage.input, usage.output) == (2 * once[0], 2 * once[1])
    # The stable prefix (tools + system) is below the 1024-token minimum: nothing cached.
    assert usage.cache_read == usage.cache_write == 0


async def test_briefs_differ_per_image_and_per_theme(client: ClaudeClient) -> None:
    cats = await client.write_briefs(**JOB, count=3)
    assert len({b.prompt for b in cats}) == 3
    assert len({b.title for b in cats}) == 3
    dogs_job: Job = {**JOB, "theme": "surfing dogs"}
    dogs = await client.write_briefs(**dogs_job, count=3)
    assert {b.prompt for b in cats}.isdisjoint({b.prompt for b in dogs})
    assert all("surfing dogs" in b.prompt for b in dogs)


async def test_user_prompt_is_every_briefs_prompt(client: ClaudeClient) -> None:
    user_prompt = "a fox reading a book under a lamp, ink drawing"
    briefs = await client.write_briefs(**JOB, count=3, user_prompt=user_prompt)
    assert [b.prompt for b in briefs] == [user_prompt] * 3
    assert len({b.title for b in briefs}) == 3  # Claude still writes distinct copy


async def test_overloaded_is_retryable_after_sdk_retries(
    sim: SimulatorProcess, faults: dict[str, str]
) -> None:
    set_knobs(sim, failure_rate=1.0, fault_statuses=[529])
    before = injected(sim)
    c = ClaudeClient(api_key=SECRET, base_url=sim.url, timeout_s=10, max_retries=1)
    try:
        with pytest.raises(RetryableError) as info:
            await c.write_briefs(**JOB, count=2)
    finally:
        await c.aclose()
    err = info.value
    assert not isinstance(err, PermanentError)
    assert (err.vendor, err.status, err.code) == ("anthropic", 529, "overloaded_error")
    assert err.message == "Overloaded"
    assert injected(sim) - before == 2  # one try plus max_retries=1
    assert_no_secret(err)


async def test_api_error_500_is_retryable(
    sim: SimulatorProcess, faults: dict[str, str], client: ClaudeClient
) -> None:
    set_knobs(sim, failure_rate=1.0, fault_statuses=[500])
    with pytest.raises(RetryableError) as info:
        await client.write_briefs(**JOB, count=1)
    assert (info.value.status, info.value.code) == (500, "api_error")


@pytest.mark.parametrize(
    ("status", "code"),
    [(400, "invalid_request_error"), (401, "authentication_error"), (403, "permission_error")],
)
async def test_client_errors_are_permanent_and_not_retried(
    sim: SimulatorProcess, faults: dict[str, str], status: int, code: str
) -> None:
    set_knobs(sim, failure_rate=1.0, fault_statuses=[status])
    before = injected(sim)
    c = ClaudeClient(api_key=SECRET, base_url=sim.url, timeout_s=10, max_retries=2)
    try:
        with pytest.raises(PermanentError) as info:
            await c.write_briefs(**JOB, count=1)
    finally:
        await c.aclose()
    assert (info.value.vendor, info.value.status, info.value.code) == ("anthropic", status, code)
    assert injected(sim) - before == 1
    assert_no_secret(info.value)


async def test_rate_limit_carries_retry_after(
    sim: SimulatorProcess, faults: dict[str, str], client: ClaudeClient
) -> None:
    set_knobs(sim, failure_rate=1.0, fault_statuses=[429])
    with pytest.raises(RateLimited) as info:
        await client.write_briefs(**JOB, count=1)
    err = info.value
    assert (err.status, err.code, err.retry_after) == (429, "rate_limit_error", 1.0)
    assert err.retryable


async def test_a_long_retry_after_is_capped() -> None:
    env = {**QUIET_ENV, "SIM_ANTHROPIC_RPM": "1"}  # the second call waits most of a minute
    with SimulatorProcess("anthropic", free_port(), env=env) as sim:
        c = ClaudeClient(api_key=SECRET, base_url=sim.url, max_retries=0, retry_after_max_s=5)
        try:
            await c.write_briefs(**JOB, count=1)
            with pytest.raises(RateLimited) as info:
                await c.write_briefs(**JOB, count=1)
        finally:
            await c.aclose()
    assert info.value.retry_after == 5


async def test_unknown_model_is_permanent(sim: SimulatorProcess) -> None:
    c = ClaudeClient(api_key=SECRET, model="not-a-model", base_url=sim.url, max_retries=0)
    try:
        with pytest.raises(PermanentError) as info:
            await c.write_briefs(**JOB, count=1)
    finally:
        await c.aclose()
    assert (info.value.status, info.value.code) == (404, "not_found_error")


async def test_slow_answer_is_vendor_timeout(sim: SimulatorProcess, faults: dict[str, str]) -> None:
    set_knobs(sim, latency_ms=3000)
    c = ClaudeClient(
        api_key=SECRET, base_url=sim.url, timeout_s=0.3, max_retries=0, min_tokens_per_s=1e6
    )
    try:
        with pytest.raises(VendorTimeout) as info:
            await c.write_briefs(**JOB, count=1)
    finally:
        await c.aclose()
    assert info.value.vendor == "anthropic"
    assert_no_secret(info.value)


async def test_the_time_allowed_grows_with_the_briefs_asked_for(
    sim: SimulatorProcess, faults: dict[str, str]
) -> None:
    c = ClaudeClient(api_key=SECRET, base_url=sim.url, timeout_s=0.5, max_retries=0)
    assert c.request_timeout_s(16_000) >= 400  # 25 briefs: minutes of writing, not 60 s
    c.min_tokens_per_s = 1624 / 1.5  # one brief (1624 tokens at most) gets 0.5 + 1.5 s
    set_knobs(sim, latency_ms=1200)  # slower than the base timeout, within the writing time
    try:
        briefs = await c.write_briefs(**JOB, count=1)
    finally:
        await c.aclose()
    assert len(briefs) == 1


async def test_a_refusal_is_permanent_and_not_asked_again(sim: SimulatorProcess) -> None:
    c = ClaudeClient(api_key=SECRET, base_url=sim.url, max_retries=2)
    before = httpx.get(f"{sim.url}/_sim/books").json()["requests"]
    try:
        with pytest.raises(PermanentError) as info:
            await c.write_briefs(
                theme="sim:refuse something against the usage policy", style="s", niche="n",
                count=2,
            )  # fmt: skip
    finally:
        await c.aclose()
    assert info.value.code == "refusal" and "declined" in info.value.message
    assert httpx.get(f"{sim.url}/_sim/books").json()["requests"] == before + 1


async def test_a_model_the_api_does_not_know_fails_the_start(sim: SimulatorProcess) -> None:
    c = ClaudeClient(api_key=SECRET, model="claude-sonnet-9-9", base_url=sim.url)
    try:
        with pytest.raises(ConfigError) as info:
            await c.check_model()
        c.model = "claude-sonnet-4-6"
        await c.check_model()  # known: nothing said
    finally:
        await c.aclose()
    assert "CLAUDE_MODEL" in str(info.value) and "claude-sonnet-9-9" in str(info.value)
    assert "claude-sonnet-4-6" in str(info.value)  # what the key may use instead
    assert_no_secret(info.value)


async def test_connection_refused_is_retryable_not_timeout() -> None:
    c = ClaudeClient(api_key=SECRET, base_url=f"http://127.0.0.1:{free_port()}", max_retries=0)
    try:
        with pytest.raises(RetryableError) as info:
            await c.write_briefs(**JOB, count=1)
    finally:
        await c.aclose()
    assert not isinstance(info.value, VendorTimeout)
    assert info.value.code == "connection_error"
    assert_no_secret(info.value)


async def test_secret_not_logged(
    sim: SimulatorProcess, faults: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    c = ClaudeClient(api_key=SECRET, base_url=sim.url, max_retries=0)
    try:
        await c.write_briefs(**JOB, count=1, job_id="job-log")
        set_knobs(sim, failure_rate=1.0, fault_statuses=[401])
        with pytest.raises(PermanentError):
            await c.write_briefs(**JOB, count=1, job_id="job-log")
    finally:
        await c.aclose()
    assert "job_id=job-log" in caplog.text
    assert SECRET not in caplog.text
    assert SECRET not in repr(c)


async def test_bad_count_is_permanent(client: ClaudeClient) -> None:
    with pytest.raises(PermanentError):
        await client.write_briefs(**JOB, count=0)


def test_too_few_briefs_is_retryable() -> None:
    one = {"prompt": "p", "negative_prompt": "", "title": "t", "description": "d", "tags": []}
    with pytest.raises(RetryableError) as info:
        briefs_from_tool_input({"designs": [one]}, count=2)
    assert info.value.code == "too_few_briefs"
    assert len(briefs_from_tool_input({"designs": [one, one, one]}, count=2)) == 2


@pytest.mark.parametrize(
    "data",
    [
        {},
        {"designs": "nope"},
        {"designs": [{"prompt": "p"}]},
        {"designs": [{"prompt": "", "negative_prompt": "", "title": "t", "description": "d"}]},
    ],
)
def test_invalid_tool_input_is_retryable(data: object) -> None:
    with pytest.raises(RetryableError) as info:
        briefs_from_tool_input(data, count=1)
    assert info.value.code == "invalid_output"


def test_brief_normalises_tags_and_title() -> None:
    brief = CreativeBrief(
        prompt="p",
        negative_prompt="",
        title="word " * 60,
        description="d",
        tags=[
            "  Cats ",
            "cats",
            "CATS!",
            "a very long tag that goes on and on",
            "",
            *[f"tag {i}" for i in range(20)],
        ],
    )
    assert len(brief.title) <= TITLE_MAX and not brief.title.endswith(" ")
    assert brief.tags[:2] == ["cats", "a very long tag that"]
    assert len(brief.tags) == TAGS_MAX
    assert len(set(brief.tags)) == len(brief.tags)
    assert all(0 < len(t) <= TAG_LEN_MAX for t in brief.tags)


def test_the_strict_tool_schema_keeps_only_what_strict_mode_supports() -> None:
    tool = designs_tool(5)
    assert tool["strict"] is True
    schema = tool["input_schema"]
    designs = schema["properties"]["designs"]
    brief = designs["items"]
    assert designs["minItems"] == 1 and "maxItems" not in designs
    assert "Exactly 5" in designs["description"]  # said in words instead
    for obj in (schema, brief):
        assert obj["additionalProperties"] is False
        assert set(obj["required"]) == set(obj["properties"])
    text = json.dumps(schema)
    assert not any(k in text for k in ('"maxLength"', '"maxItems"', '"minLength"'))
    # The bounds are still enforced on arrival.
    loose = designs_tool(5, strict=False)
    assert loose["input_schema"]["properties"]["designs"]["maxItems"] == 5


async def test_the_client_runs_in_process_on_the_simulators_app() -> None:
    """No server: the SDK's HTTP goes through ``httpx2.ASGITransport`` into the simulator's app,
    so a test of the client needs no process of its own."""
    app = anthropic_sim.create_app(Knobs.from_env("anthropic"))
    transport = httpx2.ASGITransport(app=app)
    async with ClaudeClient(
        api_key=SECRET, base_url="http://anthropic", transport=transport, max_retries=0
    ) as c:
        briefs = await c.write_briefs(**JOB, count=3, job_id="job-in-process")
    assert len(briefs) == 3 and all(b.title for b in briefs)
    assert "cozy autumn cats" in briefs[0].prompt
