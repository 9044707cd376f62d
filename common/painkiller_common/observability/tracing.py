"""OpenTelemetry traces (doc/operations.md), on only when somewhere to send them is configured.

`OTEL_EXPORTER_OTLP_ENDPOINT` set: spans go over OTLP/HTTP (the standard OTEL_* variables apply).
`PAINKILLER_TRACE_DIR` set: each process also appends its spans to `<dir>/<service>-<process>.jsonl`
(the tests' local exporter). Neither: no provider is installed, nothing is instrumented, and the
few calls below go to OpenTelemetry's no-op API.

FastAPI, SQLAlchemy and httpx come instrumented; the relay's publish and the consumer's apply are
spans of our own that continue the trace from the outbox row and the AMQP message's headers.

No span leaves the process with a query string: searches put names, MRNs and birth dates there
(`?name=`, `identifier=`), and the instrumentations record whole URLs. Every exporter gets the
spans through `_WithoutQueries`, whichever instrumentation made them.
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

from painkiller_common.observability import logs

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

        provider.add_span_processor(BatchSpanProcessor(_WithoutQueries(OTLPSpanExporter())))
    if directory := os.environ.get("PAINKILLER_TRACE_DIR"):
        path = os.path.join(directory, f"{service}-{process_kind}.jsonl")
        provider.add_span_processor(SimpleSpanProcessor(_WithoutQueries(_FileExporter(path))))
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


# Attributes that hold nothing but a query string.
QUERY_ATTRIBUTES = frozenset({"url.query", "http.query"})


class _WithoutQueries(SpanExporter):
    """Hands `exporter` each span with the query string cut from every attribute (`/x?name=Ada`
    becomes `/x`), and attributes that are only a query left out."""

    def __init__(self, exporter: SpanExporter) -> None:
        self._exporter = exporter

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return self._exporter.export([_without_queries(span) for span in spans])

    def shutdown(self) -> None:
        self._exporter.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self._exporter.force_flush(timeout_millis)


def _without_queries(span: ReadableSpan) -> ReadableSpan:
    attributes = {
        name: value.split("?", 1)[0] if isinstance(value, str) else value
        for name, value in (span.attributes or {}).items()
        if name not in QUERY_ATTRIBUTES
    }
    return ReadableSpan(
        name=span.name.split("?", 1)[0],
        context=span.context,
        parent=span.parent,
        resource=span.resource,
        attributes=attributes,
        events=span.events,
        links=span.links,
        kind=span.kind,
        status=span.status,
        start_time=span.start_time,
        end_time=span.end_time,
        instrumentation_scope=span.instrumentation_scope,
    )


class _FileExporter(SpanExporter):
    """Spans as JSON lines: name, kind, trace id, span id, parent span id and attributes."""

    def __init__(self, path: str) -> None:
        self._path, self._lock = path, threading.Lock()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        lines = [json.dumps(_summary(span)) + "\n" for span in spans]
        with self._lock, open(self._path, "a") as out:
            out.writelines(lines)
        return SpanExportResult.SUCCESS


def _summary(span: ReadableSpan) -> dict[str, object]:
    context = span.get_span_context()
    assert context is not None
    return {
        "name": span.name,
        "kind": span.kind.name,
        "trace_id": f"{context.trace_id:032x}",
        "span_id": f"{context.span_id:016x}",
        "parent_id": f"{span.parent.span_id:016x}" if span.parent else None,
        "attributes": {name: str(value) for name, value in (span.attributes or {}).items()},
    }
