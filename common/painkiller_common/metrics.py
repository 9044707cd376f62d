"""Prometheus metrics (doc/operations.md): every process serves /metrics on a port of its own.

The API's port is not the one NGINX routes to, so the figures never leave the host's network.
Routes are labelled by their template (`/api/v1/patient/{patient_id}`), never by the raw path:
ids are unbounded and would be patient-linked data in the labels.
"""

import logging

from prometheus_client import Counter, Gauge, Histogram, start_http_server

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
OUTBOX_PENDING = Gauge("painkiller_outbox_pending", "Events in the outbox not yet published.")
OUTBOX_OLDEST_AGE = Gauge(
    "painkiller_outbox_oldest_age_seconds", "How long the oldest unpublished event has waited; 0 when none does."
)
DB_POOL_IN_USE = Gauge("painkiller_db_pool_connections_in_use", "Database connections checked out, by pool.", ["pool"])


def serve(port: int | None, host: str) -> None:
    """Serve /metrics on `port` (a thread of this process); nothing when no port is configured."""
    if port is None:
        return
    start_http_server(port, addr=host)
    logger.info("metrics on %s:%d/metrics", host, port)
