"""OpenTelemetry tracing: one trace per job, from the API through every stage.

Off unless ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set (the standard variable; ``OTEL_SERVICE_NAME``
and the other ``OTEL_*`` variables apply too): then :func:`setup` installs a tracer provider
that exports over OTLP/HTTP. Off, every call here is OpenTelemetry's no-op.

The context travels in Kafka headers (W3C ``traceparent``/``tracestate``): the API puts the
submit span's there, each stage's runner continues the trace of the message it handles (one
span per message, with the vendor calls it makes as children) and puts its own on what it
produces. The monitor's fold of each event joins the same trace.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.trace import Span, SpanKind

logger = logging.getLogger(__name__)

TRACER = "pod-engine"
_HEADERS = ("traceparent", "tracestate")
# Off, the helpers below skip OpenTelemetry altogether: its no-op spans still attach a context
# and look the provider up in os.environ on every call, 8 % of the generator's event loop
# under load (py-spy, bench/pipeline.py).
_on = False


def setup(service: str) -> bool:
    """Export this process's spans over OTLP when ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set; True
    when tracing is on."""
    if not os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
        return False
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    name = os.environ.get("OTEL_SERVICE_NAME") or f"pod-{service}"
    provider = TracerProvider(resource=Resource.create({SERVICE_NAME: name}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    install(provider)
    logger.info("tracing on service=%s exporter=otlp-http", name)
    return True


def install(provider: trace.TracerProvider) -> None:
    """Record spans with ``provider`` from now on (:func:`setup`'s exporter, or a test's)."""
    global _on
    trace.set_tracer_provider(provider)
    _on = True


def tracer() -> trace.Tracer:
    """The engine's tracer (a no-op one while tracing is off)."""
    return trace.get_tracer(TRACER)


def context_from(headers: dict[str, str]) -> Context:
    """The trace context a message carries in its headers (empty when none)."""
    if not _on:
        return Context()
    carrier = {k: v for k, v in headers.items() if k in _HEADERS}
    return propagate.extract(carrier) if carrier else Context()


def headers_now() -> list[tuple[str, str | bytes | None]]:
    """Kafka headers carrying the current span's context (none while tracing is off)."""
    if not _on:
        return []
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return [(k, v) for k, v in carrier.items() if k in _HEADERS]


@contextmanager
def span(
    name: str,
    *,
    kind: SpanKind = SpanKind.INTERNAL,
    parent: Context | None = None,
    attributes: dict[str, str | int] | None = None,
) -> Iterator[Span]:
    """A span around a block, current within it; an exception escaping it is recorded."""
    if not _on:
        yield trace.INVALID_SPAN
        return
    with tracer().start_as_current_span(
        name, context=parent, kind=kind, attributes=attributes
    ) as current:
        yield current


def without_trace_headers(
    headers: Iterable[tuple[str, str | bytes | None]],
) -> list[tuple[str, str | bytes | None]]:
    """``headers`` minus a trace context (a copy that gets a new one)."""
    return [(k, v) for k, v in headers if k not in _HEADERS]
