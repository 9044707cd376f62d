"""OpenTelemetry traces (doc/operations.md), on only when somewhere to send them is configured.

`OTEL_EXPORTER_OTLP_ENDPOINT` set: spans go over OTLP/HTTP (the standard OTEL_* variables apply).
`PAINKILLER_TRACE_DIR` set: each process also appends its spans to `<dir>/<service>-<process>.jsonl`
(the tests' local exporter). Neither: no provider is installed, nothing is instrumented, and the
few calls below go to OpenTelemetry's no-op API.

FastAPI, SQLAlchemy and httpx come instrumented; the relay's publish and the consumer's apply are
spans of our own that continue the trace from the outbox row and the AMQP message's headers.
"""

import json
import os
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from fastapi import FastAPI
from opentelemetry import propagate, trace
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.trace import SpanKind
from sqlalchemy import Engine

from painkiller_common import logs

tracer = trace.get_tracer("painkiller")


def enabled() -> bool:
    return bool(os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or os.environ.get("PAINKILLER_TRACE_DIR"))


def configure(service: str, process_kind: str) -> None:
    """Install the tracer provider of this process, if traces are to go anywhere."""
    if not enabled():
        return
    resource = Resource.create({"service.name": f"painkiller-{service}", "painkiller.process": process_kind})
    provider = TracerProvider(resource=resource)
    if os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    if directory := os.environ.get("PAINKILLER_TRACE_DIR"):
        path = os.path.join(directory, f"{service}-{process_kind}.jsonl")
        provider.add_span_processor(SimpleSpanProcessor(_FileExporter(path)))
    trace.set_tracer_provider(provider)
    HTTPXClientInstrumentor().instrument()


def instrument_app(app: FastAPI) -> None:
    if enabled():  # health probes would be most of the spans, and say nothing
        FastAPIInstrumentor.instrument_app(app, excluded_urls="health/")


def instrument_engine(engine: Engine) -> None:
    if enabled():
        SQLAlchemyInstrumentor().instrument(engine=engine)


def traceparent() -> str | None:
    """The traceparent to pass on: the current span's when tracing, else the one that came in."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier.get("traceparent") or logs.TRACEPARENT.get()


@contextmanager
def span(name: str, kind: SpanKind, parent: str | None) -> Iterator[None]:
    """A span of ours (publish, apply) as a child of the traceparent an event carries."""
    context = propagate.extract({"traceparent": parent} if parent else {})
    with tracer.start_as_current_span(name, context=context, kind=kind):
        yield


class _FileExporter(SpanExporter):
    """Spans as JSON lines: name, kind, trace id, span id and parent span id."""

    def __init__(self, path: str) -> None:
        self._path, self._lock = path, threading.Lock()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        lines = [json.dumps(_summary(span)) + "\n" for span in spans]
        with self._lock, open(self._path, "a") as out:
            out.writelines(lines)
        return SpanExportResult.SUCCESS


def _summary(span: ReadableSpan) -> dict[str, str | None]:
    context = span.get_span_context()
    assert context is not None
    return {
        "name": span.name,
        "kind": span.kind.name,
        "trace_id": f"{context.trace_id:032x}",
        "span_id": f"{context.span_id:016x}",
        "parent_id": f"{span.parent.span_id:016x}" if span.parent else None,
    }
