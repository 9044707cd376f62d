"""LISTEN connections: a worker blocks until a commit tells it there is work, instead of asking a
table again and again (an idle stack's cost: doc/performance.md).

A trigger NOTIFYs the channel in the transaction that makes the work; PostgreSQL delivers the
notification when, and only if, that transaction commits, and folds identical ones of one
transaction into one. A notification sent while nobody listened is gone: a listener that
(re)connects treats its start as one, and every worker keeps a slow poll as the safety net.
"""

import logging
import select
import threading

import psycopg

from painkiller_common.db.pg import dsn

logger = logging.getLogger(__name__)

# How often a blocked listener looks up to see a stop asked for (no query: a timeout of its wait).
STOP_CHECK_S = 5.0
# While it cannot listen (PostgreSQL restarting), it wakes its workers this often: they poll.
RETRY_S = 2.0


def listening(url: str, channel: str, application_name: str) -> psycopg.Connection:
    """A connection of its own, LISTENing on `channel` (autocommit: it holds no transaction open)."""
    conn = psycopg.connect(
        dsn(url),
        autocommit=True,
        connect_timeout=5,
        application_name=application_name,
        # A cut network sends no FIN: keepalives notice the dead peer within about 25 s.
        keepalives=1,
        keepalives_idle=10,
        keepalives_interval=5,
        keepalives_count=3,
    )
    try:
        conn.execute(f"LISTEN {channel}")
    except psycopg.Error:
        conn.close()  # connected, but could not LISTEN: not left open behind the poll
        raise
    return conn


def wake_on_notify(url: str, channel: str, woken: threading.Event, stop: threading.Event) -> None:
    """Set `woken` on each notification on `channel` until `stop` is set (a thread's loop).

    It is set too when listening starts (what was notified before is not heard) and every
    RETRY_S while PostgreSQL cannot be reached, so the workers it wakes never miss work."""
    while not stop.is_set():
        try:
            with listening(url, channel, "painkiller-listen") as conn:
                woken.set()
                while not stop.is_set():
                    # Blocks on the socket itself: psycopg's own waits (notifies(timeout=...)) wake
                    # ten times a second to let a Ctrl-C through, a cost an idle stack should not pay.
                    readable, _, _ = select.select([conn.fileno()], [], [], STOP_CHECK_S)
                    if readable and list(conn.notifies(timeout=0)):
                        woken.set()
        except Exception as exc:  # whatever broke it, it listens again: its workers rely on it
            unforeseen = not isinstance(exc, psycopg.Error)  # an outage needs no traceback
            reason = type(exc).__name__
            logger.warning("cannot LISTEN on %s (%s); polling until it can", channel, reason, exc_info=unforeseen)
            woken.set()
            stop.wait(RETRY_S)
