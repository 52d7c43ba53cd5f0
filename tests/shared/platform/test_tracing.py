"""Tracing against the real broker: a job's trace goes from the submit span through every
stage that handles its events (the context rides in Kafka headers), with each vendor call a
child span of its stage's. Recorded with OpenTelemetry's in-memory exporter."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from aiohttp import web
from confluent_kafka import Producer
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Span, SpanKind

from shared.contract.events import ImageGenerated, JobRequested
from shared.contract.topics import Stage
from shared.pipeline.runner import MessageContext, Output, StageRunner
from shared.platform import tracing
from shared.platform.http import async_client
from tests.shared.pipeline.test_runner import read_async, settings
from tests.support.infra import free_port, unique
from tests.support.kafka import create_topics, job
from tests.support.stages import create_stage_topics, echo_stage, make_echo_handler, output_topic


@pytest.fixture(scope="module")
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.install(provider)  # once per process: later modules record nothing
    yield exporter
    provider.shutdown()


@dataclass
class _Vendor:
    url: str
    traceparents: list[str | None]


@pytest.fixture
async def vendor() -> AsyncIterator[_Vendor]:
    """A vendor: a real HTTP server on a free port recording each request's traceparent."""
    seen: list[str | None] = []

    async def thing(request: web.Request) -> web.Response:
        seen.append(request.headers.get("traceparent"))
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_get("/v1/thing", thing)
    http_runner = web.AppRunner(app)
    await http_runner.setup()
    try:
        port = free_port()
        await web.TCPSite(http_runner, "127.0.0.1", port).start()
        yield _Vendor(f"http://127.0.0.1:{port}", seen)
    finally:
        await http_runner.cleanup()


async def test_one_job_is_one_trace_across_stages_with_vendor_calls_inside(
    pipeline_topics: str, spans: InMemorySpanExporter, vendor: _Vendor
) -> None:
    bootstrap = pipeline_topics
    first_name = unique("traced")
    first = echo_stage(first_name)
    create_stage_topics(bootstrap, first, 2)
    second = Stage(unique("traced2"), (output_topic(first_name),), unique("traced2f"))
    create_topics(bootstrap, [*second.retry_topics, second.dlq, f"{second.name}.out"], 2)

    # The second stage calls the vendor through the project's client.
    client = async_client(base_url=vendor.url)

    async def call_vendor(event: ImageGenerated, ctx: MessageContext) -> list[Output]:
        (await client.get("/v1/thing")).raise_for_status()
        return [Output(f"{second.name}.out", event)]

    runners: list[StageRunner[Any]] = [
        StageRunner(
            stage=first,
            handler=make_echo_handler(first_name),
            settings=settings(bootstrap),
            accept=(JobRequested,),
        ),
        StageRunner(
            stage=second,
            handler=call_vendor,
            settings=settings(bootstrap),
            accept=(ImageGenerated,),
        ),
    ]
    tasks = [asyncio.create_task(r.run()) for r in runners]
    try:
        submitted = job(unique("traced-job"))
        with tracing.span("job submit", kind=SpanKind.PRODUCER) as root:
            headers = tracing.headers_now()
            producer = Producer({"bootstrap.servers": bootstrap})
            producer.produce(
                first.inputs[0], submitted.to_json(), key=submitted.job_id.encode(), headers=headers
            )
            assert producer.flush(10) == 0
        [out] = await read_async(bootstrap, f"{second.name}.out", 1)
    finally:
        for r in runners:
            r.request_stop()
        await asyncio.wait_for(asyncio.gather(*tasks), 30)
        await client.aclose()

    _assert_one_trace(spans, root, first_name, second.name, submitted.job_id)
    # No trace context leaks to the vendor, and the last output carries the trace on.
    assert vendor.traceparents == [None]
    out_headers = dict(out.headers() or [])
    trace_id = root.get_span_context().trace_id
    assert f"{trace_id:032x}" in out_headers["traceparent"].decode()


def _assert_one_trace(
    spans: InMemorySpanExporter, root: Span, first_name: str, second_name: str, job_id: str
) -> None:
    """submit -> first stage -> second stage -> its vendor call: one trace, each a child."""
    trace_id = root.get_span_context().trace_id
    mine = [s for s in spans.get_finished_spans() if s.context.trace_id == trace_id]
    by_name = {s.name: s for s in mine}
    first_span = by_name[f"{first_name} handle"]
    second_span = by_name[f"{second_name} handle"]
    [call] = [s for s in mine if s.kind is SpanKind.CLIENT]

    def parent(s: ReadableSpan) -> int | None:
        return s.parent.span_id if s.parent else None

    assert parent(first_span) == root.get_span_context().span_id
    assert parent(second_span) == first_span.context.span_id
    assert parent(call) == second_span.context.span_id
    assert first_span.kind is SpanKind.CONSUMER
    assert first_span.attributes is not None
    assert first_span.attributes["pod.job_id"] == job_id
    assert call.attributes is not None and call.attributes["http.response.status_code"] == 200


def test_off_without_an_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
    assert tracing.setup("generator") is False
