"""Connecting to RabbitMQ, and staying connected: pika does not reconnect by itself."""

import logging
import time
from collections.abc import Callable

import pika
from pika.exceptions import AMQPError

logger = logging.getLogger(__name__)

# Reconnect quickly once the broker is back: events waiting in an outbox are readings unseen.
MAX_RECONNECT_DELAY_S = 10.0


def connection_parameters(url: str) -> pika.URLParameters:
    params = pika.URLParameters(url)
    params.heartbeat = 30  # a frozen broker is noticed within a minute
    params.blocked_connection_timeout = 60
    params.connection_attempts = 1
    params.socket_timeout = 5
    return params


def run_reconnecting(session: Callable[[], None], *, stopping: Callable[[], bool]) -> None:
    """Run `session` (one connection's life) again and again, with back-off, until `stopping()`."""
    backoff = 1.0
    while not stopping():
        try:
            session()
            backoff = 1.0
        except (AMQPError, OSError) as exc:
            logger.warning("broker unavailable (%s); retrying in %.0fs", type(exc).__name__, backoff)
        if not stopping():
            time.sleep(backoff)
            backoff = min(backoff * 2, MAX_RECONNECT_DELAY_S)
