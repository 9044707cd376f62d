"""Connecting to RabbitMQ, and staying connected: pika does not reconnect by itself."""

import logging
import time
from collections.abc import Callable

import pika
from pika.exceptions import AMQPError

from painkiller_common.observability import metrics

logger = logging.getLogger(__name__)

# Reconnect quickly once the broker is back: events waiting in an outbox are readings unseen.
MAX_RECONNECT_DELAY_S = 10.0
# A relay's report that it is connected older than this is no longer news (readiness: health.py);
# relays report three times as often.
BROKER_REPORT_STALE_S = 30


def connection_parameters(url: str) -> pika.URLParameters:
    params = pika.URLParameters(url)
    params.heartbeat = 30  # a frozen broker is noticed within a minute
    params.blocked_connection_timeout = 60
    params.connection_attempts = 1
    params.socket_timeout = 5
    return params


def run_reconnecting(session: Callable[[], None], *, stopping: Callable[[], bool]) -> None:
    """Run `session` (one connection's life) again and again, with back-off, until `stopping()`.

    Only a signal (through `stopping`) ends a worker. Whatever else ends a session, the broker or
    the database gone, or an error nobody foresaw, is answered the same way: new connections after
    the back-off. Work in hand is safe either way: unmarked outbox rows are published again, and
    unacked deliveries come back."""
    backoff = 1.0
    while not stopping():
        try:
            session()
            backoff = 1.0
        except (AMQPError, OSError) as exc:
            logger.warning("broker unavailable (%s); retrying in %.0fs", type(exc).__name__, backoff)
            metrics.WORKER_RECONNECTS.labels("broker").inc()
        except Exception:
            logger.exception("worker failed; reconnecting in %.0fs", backoff)
            metrics.WORKER_RECONNECTS.labels("error").inc()
        if not stopping():
            time.sleep(backoff)
            backoff = min(backoff * 2, MAX_RECONNECT_DELAY_S)
