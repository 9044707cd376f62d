"""JSON logs, one object per line, from every process, and the ids that follow one piece of work.

Each line holds time, level, service, process kind, logger and message, and, where there is one,
the `request_id` (the client's X-Request-ID, or NGINX's own), the `trace_id` of the W3C
`traceparent`, and the `event_id`. They come from context variables that the API sets for a
request and the relay and consumer for an event, and that travel with the work: to the patient
service's HTTP call, into the outbox row, the AMQP message's headers and what a consumer emits
(doc/operations.md). No line may hold patient data: messages name ids, never names or MRNs.
"""

import logging
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from pythonjsonlogger.json import JsonFormatter

REQUEST_ID: ContextVar[str | None] = ContextVar("request_id", default=None)
TRACEPARENT: ContextVar[str | None] = ContextVar("traceparent", default=None)
EVENT_ID: ContextVar[str | None] = ContextVar("event_id", default=None)

FIELDS = ["levelname", "service", "process_kind", "name", "message", "request_id", "trace_id", "event_id"]


class _Context(logging.Filter):
    """Puts the process's names and the current ids on every record."""

    def __init__(self, service: str, process_kind: str) -> None:
        super().__init__()
        self.service, self.process_kind = service, process_kind

    def filter(self, record: logging.LogRecord) -> bool:
        record.service, record.process_kind = self.service, self.process_kind
        record.request_id, record.event_id = REQUEST_ID.get(), EVENT_ID.get()
        record.trace_id = trace_id(TRACEPARENT.get())
        return True


def configure(service: str, process_kind: str, level: str) -> None:
    """Every record of the process, ours and the libraries', as one JSON object per line."""
    handler = logging.StreamHandler()
    handler.addFilter(_Context(service, process_kind))
    handler.setFormatter(
        JsonFormatter(FIELDS, rename_fields={"levelname": "level", "name": "logger"}, timestamp="time")  # ISO 8601, µs
    )
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(level)
    logging.getLogger("pika").setLevel(logging.WARNING)  # its INFO is a line per socket event


def trace_id(traceparent: str | None) -> str | None:
    """The trace id of a W3C traceparent (`00-<trace id>-<span id>-<flags>`), if it is one."""
    parts = (traceparent or "").split("-")
    return parts[1] if len(parts) == 4 and len(parts[1]) == 32 else None


# NGINX's own rule for a request id it passes on; W3C's for a traceparent. Anything else is dropped.
_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
_TRACEPARENT = re.compile(r"[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}")


@contextmanager
def work(*, request_id: str | None, traceparent: str | None, event_id: str | None = None) -> Iterator[None]:
    """The ids of the work under way, for the log lines and whatever it sends on; ids that are
    not well formed are left out (they came from outside, and go into columns and headers)."""
    request_id = request_id if request_id and _REQUEST_ID.fullmatch(request_id) else None
    traceparent = traceparent if traceparent and _TRACEPARENT.fullmatch(traceparent) else None
    tokens = (REQUEST_ID.set(request_id), TRACEPARENT.set(traceparent), EVENT_ID.set(event_id))
    try:
        yield
    finally:
        EVENT_ID.reset(tokens[2])
        TRACEPARENT.reset(tokens[1])
        REQUEST_ID.reset(tokens[0])


def request_id_of(sent: str | None) -> str:
    """A request's id: the one the client (or NGINX) sent if it is well formed, else a new one. It
    goes into logs, the outbox and the audit trail, where a client must not write what it likes."""
    return sent if sent and _REQUEST_ID.fullmatch(sent) else uuid.uuid4().hex


def outgoing_headers() -> dict[str, str]:
    """The current ids as headers of an outgoing HTTP request or AMQP message."""
    headers = {"X-Request-ID": REQUEST_ID.get(), "traceparent": TRACEPARENT.get()}
    return {name: value for name, value in headers.items() if value}
