"""Prometheus metrics (doc/operations.md): every process serves /metrics on a port of its own,
and a relay or consumer also /live, its loop's heartbeat.

The API's port is not the one NGINX routes to, so the figures never leave the host's network.
Routes are labelled by their template (`/api/v1/patient/{patient_id}`), never by the raw path:
ids are unbounded and would be patient-linked data in the labels.
"""

import logging
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

logger = logging.getLogger(__name__)

REQUEST_DURATION = Histogram(
    "http_server_request_duration_seconds",
    "Time to answer an HTTP request, by method, route template and status.",
    ["method", "route", "status"],
)
EVENTS_PUBLISHED = Counter(
    "painkiller_events_published_total", "Events the relay published and the broker confirmed.", ["type"]
)
EVENTS_APPLIED = Counter("painkiller_events_applied_total", "Events the consumer applied for the first time.", ["type"])
EVENTS_DEAD_LETTERED = Counter(
    "painkiller_events_dead_lettered_total",
    "Messages the consumer refused for good (forged or invalid): they went to the dead-letter queue.",
    ["type"],
)
EVENT_LAG = Histogram(
    "painkiller_event_lag_seconds",
    "From an event's commit (occurred_at) to its application by the consumer.",
    ["type"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
)
WORKER_RECONNECTS = Counter(
    "painkiller_worker_reconnects_total",
    "Times a relay, consumer or dispatcher started over on new connections, by why: the broker went"
    " away, or an error nobody foresaw (its traceback is in the log).",
    ["reason"],
)
OUTBOX_PENDING = Gauge("painkiller_outbox_pending", "Events in the outbox not yet published.")
OUTBOX_OLDEST_AGE = Gauge(
    "painkiller_outbox_oldest_age_seconds", "How long the oldest unpublished event has waited; 0 when none does."
)
# From PostgreSQL's pg_stat_archiver, by the relays: continuous backups that stopped are noticed
# (doc/operations.md, backups). 0 until a segment has been archived (or failed to be).
WAL_LAST_ARCHIVED = Gauge(
    "painkiller_wal_last_archived_timestamp_seconds", "When PostgreSQL last archived a WAL segment (Unix time)."
)
WAL_LAST_ARCHIVE_FAILURE = Gauge(
    "painkiller_wal_last_archive_failure_timestamp_seconds", "When archiving a WAL segment last failed (Unix time)."
)
# Set in uvicorn's workers when an API runs several (cli.serve): each writes its figures to files
# there, and the supervisor serves them added up (prometheus-client's multiprocess mode).
MULTIPROCESS = "PROMETHEUS_MULTIPROC_DIR" in os.environ
DB_POOL_IN_USE = Gauge(
    "painkiller_db_pool_connections_in_use",
    "Database connections checked out, by pool.",
    ["pool"],
    multiprocess_mode="livesum",  # with several workers: the sum over the live ones
)


HEARTBEAT_AGE = Gauge("painkiller_loop_heartbeat_age_seconds", "Since the relay's or consumer's loop last turned.")


class Heartbeat:
    """A loop's sign of life: it calls `beat()` each turn, and is alive while the last beat is
    recent. A loop stuck (a hung call, a deadlock) or kept from its work that long fails /live,
    and the orchestrator restarts it, which loses nothing (doc/events.md)."""

    def __init__(self, stale_after_s: float = 60) -> None:
        self.stale_after_s = stale_after_s
        self._last = time.monotonic()

    def beat(self) -> None:
        self._last = time.monotonic()

    def age(self) -> float:
        return time.monotonic() - self._last

    def alive(self) -> bool:
        return self.age() < self.stale_after_s


def serve(port: int | None, host: str, *, heartbeat: Heartbeat | None = None) -> None:
    """Serve /metrics (and, with a heartbeat, /live) on `port` from a thread of this process;
    nothing when no port is configured."""
    if port is None or MULTIPROCESS:  # a worker among several: the supervisor serves them all
        return
    if heartbeat is not None:
        HEARTBEAT_AGE.set_function(heartbeat.age)
    _start(port, host, _handler(REGISTRY, heartbeat))


def serve_workers(port: int, host: str) -> None:
    """In uvicorn's supervisor of several workers: /metrics adds up what they wrote."""
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    _start(port, host, _handler(registry, None))


def _start(port: int, host: str, handler: type[BaseHTTPRequestHandler]) -> None:
    server = ThreadingHTTPServer((host, port), handler)
    threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()
    logger.info("metrics on %s:%d/metrics", host, port)


def _handler(registry: CollectorRegistry, heartbeat: Heartbeat | None) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (the name http.server calls)
            if self.path == "/metrics":
                self._answer(200, generate_latest(registry), CONTENT_TYPE_LATEST)
            elif self.path == "/live" and heartbeat is not None:
                alive = heartbeat.alive()
                self._answer(200 if alive else 503, b"ok\n" if alive else b"stuck\n", "text/plain")
            else:
                self._answer(404, b"not found\n", "text/plain")

        def _answer(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            """Scrapes are not logged: a line every few seconds says nothing (and the logs are JSON)."""

    return Handler
