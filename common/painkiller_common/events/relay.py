"""The outbox relay: publishes committed events to RabbitMQ and marks them sent once confirmed.

One relay process per service. Each batch of pending rows is claimed with
`FOR UPDATE SKIP LOCKED`, published with publisher confirms (pipelined: the whole batch is in
flight at once, which is what lets a relay keep up with batch ingestion), and marked published in
the same transaction once every confirm is in. A crash anywhere before that commit leaves the
rows pending: they are published again, a duplicate that consumers ignore, never a loss.

It is woken by the commit itself: a trigger on the outbox NOTIFYs, and the relay LISTENs on a
connection of its own inside the broker connection's event loop (db/notifications.py). A 10 s poll
stays as the safety net; without a listener it polls fast.
"""

import contextlib
import functools
import logging
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Concatenate, ParamSpec

import pika
import psycopg
from opentelemetry.trace import SpanKind
from pika.adapters.select_connection import IOLoop
from pika.exceptions import AMQPError
from sqlalchemy import Connection, Engine, Row, case, delete, func, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.engine import Transaction
from sqlalchemy.exc import SQLAlchemyError

from painkiller_common.contracts import EXCHANGE
from painkiller_common.db.migrations import OUTBOX_CHANNEL
from painkiller_common.db.notifications import listening
from painkiller_common.db.outbox import backlog
from painkiller_common.db.tables import EventTables
from painkiller_common.events.broker import BROKER_REPORT_STALE_S, connection_parameters, run_reconnecting
from painkiller_common.events.topology import check_with
from painkiller_common.observability import logs, metrics, tracing

logger = logging.getLogger(__name__)

OUTBOX_RETENTION = timedelta(days=7)
PROCESSED_EVENT_RETENTION = timedelta(days=30)  # far longer than any redelivery
IDEMPOTENCY_KEY_RETENTION = timedelta(hours=24)
REFUSAL_RETENTION = timedelta(days=90)  # the counts of refusals without a valid token (tables.py)
BACKLOG_EVERY_S = 1.0  # how often the outbox gauges are refreshed, at most (at rest: each poll)
ARCHIVER_EVERY_S = 15.0  # how often the WAL archive gauges are: archiving is judged in minutes
_ARCHIVER = text(
    "SELECT extract(epoch FROM last_archived_time) AS archived, extract(epoch FROM last_failed_time) AS failed"
    " FROM pg_stat_archiver"
)
# How often a connected relay says so again: three times within what readiness calls stale.
BROKER_REPORT_EVERY_S = BROKER_REPORT_STALE_S / 3
# A commit's notification starts a batch this much later, so that the events committed meanwhile
# share its claim, confirms and mark (a transaction and a confirm round trip per batch): under a
# steady load of single readings, several per batch instead of one or two.
GATHER_S = 0.01


class _Listener:
    """A LISTEN connection: its socket turns readable when a transaction that wrote the outbox commits."""

    def __init__(self, url: str) -> None:
        self.conn = listening(url, OUTBOX_CHANNEL, "painkiller-relay-listen")
        # Kept, not asked again: a connection the server dropped no longer has a fileno() to
        # give, and the loop must still unregister it.
        self.fd = self.conn.fileno()

    def drain(self) -> None:
        """Read what arrived, without waiting; raises psycopg.Error if the connection broke."""
        for _ in self.conn.notifies(timeout=0):
            pass

    def close(self) -> None:
        with contextlib.suppress(psycopg.Error):
            self.conn.close()


class _Connection(pika.SelectConnection):
    """pika hands each frame of a message (method, header, body) to its socket with a send() of
    its own: three system calls and three TCP segments per event, which cost the relay, and
    RabbitMQ reading them, more than the rest of a publish. Frames emitted inside `gathered()`
    (a batch's publishes) go out in one write when it ends. pika is pinned (constraints.txt):
    `_adapter_emit_data` is the one place every frame passes, and the fault suite publishes
    through it."""

    _gathered: list[bytes] | None = None

    def _adapter_emit_data(self, data: bytes) -> None:
        if self._gathered is None:
            super()._adapter_emit_data(data)
        else:
            self._gathered.append(data)

    @contextlib.contextmanager
    def gathered(self) -> Iterator[None]:
        self._gathered = []
        try:
            yield
            frames = self._gathered
        finally:
            self._gathered = None
        # Not on an error: the batch is abandoned and its connection closed, nothing half-sent.
        if frames:
            super()._adapter_emit_data(b"".join(frames))


P = ParamSpec("P")


def _recovering(method: "Callable[Concatenate[Relay, P], None]") -> "Callable[Concatenate[Relay, P], None]":
    """A callback of the broker connection's loop that fails in a way nobody foresaw (a database
    driver's error of a new kind, say) starts the relay over on new connections, after the usual
    back-off, instead of ending the loop and with it the process: the rows it held stay pending."""

    @functools.wraps(method)
    def guarded(relay: "Relay", *args: P.args, **kwargs: P.kwargs) -> None:
        try:
            method(relay, *args, **kwargs)
        except Exception:
            logger.exception("relay failed; reconnecting")
            relay._start_over()

    return guarded


@dataclass
class _Batch:
    db: Connection
    tx: Transaction
    size: int
    seq_by_tag: dict[int, int] = field(default_factory=dict)
    seq_by_event: dict[str, int] = field(default_factory=dict)
    row_by_seq: dict[int, Row[Any]] = field(default_factory=dict)
    returned: set[int] = field(default_factory=set)
    confirmed: list[int] = field(default_factory=list)
    failed: int = 0


class Relay:
    def __init__(
        self,
        *,
        engine: Engine,
        tables: EventTables,
        amqp_url: str,
        batch_size: int = 500,
        idle_poll_s: float = 0.05,
        # Woken by commits, it looks on its own only this often: for a notification lost while its
        # LISTEN connection was down, and to refresh the gauges and its broker report at rest.
        listening_poll_s: float = 10.0,
        prune_every_s: float = 300,
        heartbeat: metrics.Heartbeat | None = None,
    ) -> None:
        self._engine = engine
        self._tables = tables
        self._amqp_url = amqp_url
        # RabbitMQ refuses a message whose user_id is not the connection's user: consumers can
        # trust it to say who published.
        self._user_id = pika.URLParameters(amqp_url).credentials.username
        self._batch_size = batch_size
        self._idle_poll_s = idle_poll_s
        self._listening_poll_s = listening_poll_s
        self._listener: _Listener | None = None
        self._timer: object | None = None
        self._tick_at = 0.0  # when the waiting `_timer` runs (monotonic)
        self._woken = False  # a commit was notified while a batch was in flight
        self._listen_again_at = 0.0
        self._prune_every_s = prune_every_s
        self._last_prune = 0.0
        self._last_measure = 0.0
        self._last_archiver = 0.0
        self._reported_at = 0.0
        self._heartbeat = heartbeat or metrics.Heartbeat()
        self._stopping = False
        self._connection: _Connection | None = None
        self._channel: Any = None
        self._batch: _Batch | None = None
        self._next_tag = 0

    # --- process lifecycle -------------------------------------------------------------
    def run_forever(self) -> None:
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        run_reconnecting(self._run_connection, stopping=lambda: self._stopping)
        logger.info("relay stopped")

    def _on_signal(self, signum: int, frame: object) -> None:
        self._stopping = True
        if self._connection is not None:
            self._connection.ioloop.add_callback_threadsafe(self._close)

    def _close(self) -> None:
        if self._connection is not None and not (self._connection.is_closing or self._connection.is_closed):
            self._connection.close()

    def _start_over(self) -> None:
        """Let go of the batch and the LISTEN connection, and close the broker connection: its
        close ends this connection's loop, and `run_reconnecting` opens new ones."""
        self._abandon_batch()
        self._stop_listening()
        if self._connection is None:
            return
        if self._connection.is_closing or self._connection.is_closed:
            self._connection.ioloop.stop()
        else:
            self._connection.close()

    def _run_connection(self) -> None:
        try:
            check_with(self._amqp_url)  # `migrate` declared it; this user may not
        except AMQPError:
            self._report_broker(connected=False)
            raise
        self._connection = _Connection(
            connection_parameters(self._amqp_url),
            on_open_callback=self._on_open,
            on_open_error_callback=self._on_open_error,
            on_close_callback=self._on_closed,
        )
        try:
            self._connection.ioloop.start()
        finally:  # however the loop ended, nothing of this connection's life is carried over
            self._abandon_batch()
            self._stop_listening()
            self._timer = self._channel = None

    def _on_open(self, connection: pika.SelectConnection) -> None:
        connection.channel(on_open_callback=self._on_channel_open)

    def _on_open_error(self, connection: pika.SelectConnection, error: BaseException) -> None:
        logger.warning("cannot connect to the broker: %s", error)
        self._report_broker(connected=False)
        connection.ioloop.stop()

    def _on_closed(self, connection: pika.SelectConnection, reason: BaseException) -> None:
        if not self._stopping:
            logger.warning("broker connection closed: %s", reason)
        self._abandon_batch()
        self._stop_listening()
        self._report_broker(connected=False)
        connection.ioloop.stop()

    @_recovering
    def _on_channel_open(self, channel: Any) -> None:
        self._report_broker(connected=True)
        self._channel = channel
        self._next_tag = 0
        channel.add_on_return_callback(self._on_return)
        channel.add_on_close_callback(lambda _channel, _reason: self._close())
        channel.confirm_delivery(self._on_confirm, callback=lambda _frame: self._schedule(0))
        self._listen()
        logger.info("relay connected; publishing to %s", EXCHANGE)

    def _schedule(self, delay_s: float) -> None:
        """Run `_tick` after `delay_s`, replacing a tick already waiting."""
        if self._connection is None or self._stopping:
            return
        if self._timer is not None:
            self._connection.ioloop.remove_timeout(self._timer)
        self._timer = self._connection.ioloop.call_later(delay_s, self._tick)
        self._tick_at = time.monotonic() + delay_s

    def _schedule_within(self, delay_s: float) -> None:
        """Run `_tick` within `delay_s`: sooner if it was due sooner already."""
        if self._timer is None or self._tick_at > time.monotonic() + delay_s:
            self._schedule(delay_s)

    def _poll_interval(self) -> float:
        return self._listening_poll_s if self._listener is not None else self._idle_poll_s

    # --- wake-ups on commit -----------------------------------------------------------------
    def _listen(self) -> None:
        assert self._connection is not None
        self._listen_again_at = time.monotonic() + 5.0
        try:
            self._listener = _Listener(str(self._engine.url.render_as_string(hide_password=False)))
        except psycopg.Error as exc:
            logger.warning("cannot LISTEN (%s); polling every %ss", type(exc).__name__, self._idle_poll_s)
            return
        self._connection.ioloop.add_handler(self._listener.fd, self._on_notify, IOLoop.READ)

    def _stop_listening(self) -> None:
        listener, self._listener = self._listener, None
        if listener is None:
            return
        if self._connection is not None:
            # The socket may be closed already (the server went away): the poller then forgot it.
            with contextlib.suppress(OSError, KeyError):
                self._connection.ioloop.remove_handler(listener.fd)
        listener.close()

    @_recovering
    def _on_notify(self, _fd: int, _events: int) -> None:
        assert self._listener is not None
        try:
            self._listener.drain()
        except psycopg.Error as exc:
            logger.warning("LISTEN connection lost (%s); polling until it is back", type(exc).__name__)
            self._stop_listening()
            self._schedule(0)
            return
        if self._batch is not None:
            self._woken = True  # run again as soon as this batch is done
        else:
            self._schedule_within(GATHER_S)

    # --- one batch ------------------------------------------------------------------------
    @_recovering
    def _tick(self) -> None:
        self._timer = None
        self._heartbeat.beat()  # the loop turns: at least once per poll interval
        if self._batch is not None or self._channel is None or not self._channel.is_open:
            return
        self._woken = False
        try:
            self._prune_if_due()
            self._measure_backlog_if_due()
            batch = self._claim()
        except SQLAlchemyError as exc:
            logger.warning("database unavailable (%s); retrying", type(exc).__name__)
            self._schedule(2.0)
            return
        except AMQPError as exc:  # the channel went away mid-batch: start over on a new one
            logger.warning("publish failed: %s", type(exc).__name__)
            self._abandon_batch()
            self._close()
            return
        if batch is None:
            if self._listener is None and time.monotonic() >= self._listen_again_at:
                self._listen()
            self._schedule(self._poll_interval())

    def _claim(self) -> _Batch | None:
        outbox = self._tables.outbox
        db = self._engine.connect()
        tx = db.begin()
        try:
            rows = db.execute(
                select(
                    outbox.c.seq,
                    outbox.c.event_id,
                    outbox.c.event_type,
                    outbox.c.body,
                    outbox.c.request_id,
                    outbox.c.traceparent,
                )
                .where(outbox.c.published_at.is_(None))
                .order_by(outbox.c.seq)
                .limit(self._batch_size)
                .with_for_update(skip_locked=True)
            ).all()
        except SQLAlchemyError:
            db.close()
            raise
        if not rows:
            tx.rollback()
            db.close()
            return None
        self._batch = batch = _Batch(db=db, tx=tx, size=len(rows))
        assert self._connection is not None
        with self._connection.gathered():  # the batch's frames in one write
            for row in rows:
                self._next_tag += 1
                batch.seq_by_tag[self._next_tag] = row.seq
                batch.seq_by_event[str(row.event_id)] = row.seq
                batch.row_by_seq[row.seq] = row
                ids = logs.work(request_id=row.request_id, traceparent=row.traceparent)
                with ids, tracing.span(f"publish {row.event_type}", SpanKind.PRODUCER, row.traceparent):
                    # The request's ids, for the consumer (logs.py); the traceparent now this publish's.
                    headers = {"x-request-id": row.request_id, "traceparent": tracing.traceparent()}
                    self._channel.basic_publish(
                        EXCHANGE,
                        row.event_type,
                        row.body.encode(),
                        properties=pika.BasicProperties(
                            content_type="application/json",
                            delivery_mode=pika.DeliveryMode.Persistent,
                            message_id=str(row.event_id),
                            type=row.event_type,
                            user_id=self._user_id,
                            headers={name: value for name, value in headers.items() if value} or None,
                        ),
                        mandatory=True,
                    )
        return batch

    @_recovering
    def _on_return(self, _channel: Any, _method: Any, properties: Any, _body: bytes) -> None:
        # Only if even the alternate exchange could not take it; keep the row for a later retry.
        if self._batch is not None and properties.message_id in self._batch.seq_by_event:
            logger.error("event %s was returned unroutable", properties.message_id)
            self._batch.returned.add(self._batch.seq_by_event[properties.message_id])

    @_recovering
    def _on_confirm(self, frame: Any) -> None:
        batch = self._batch
        if batch is None:
            return
        method = frame.method
        acked = isinstance(method, pika.spec.Basic.Ack)
        tags = [t for t in batch.seq_by_tag if t <= method.delivery_tag] if method.multiple else [method.delivery_tag]
        for tag in tags:
            seq = batch.seq_by_tag.pop(tag, None)
            if seq is None:
                continue
            if acked and seq not in batch.returned:
                batch.confirmed.append(seq)
            else:
                batch.failed += 1
        if not batch.seq_by_tag:
            self._finish()

    def _finish(self) -> None:
        batch, self._batch = self._batch, None
        assert batch is not None
        outbox = self._tables.outbox
        try:
            if batch.confirmed:
                batch.db.execute(
                    # When the confirms came, not when the batch began: the lag figures read it.
                    update(outbox).where(outbox.c.seq.in_(batch.confirmed)).values(published_at=func.clock_timestamp())
                )
            batch.tx.commit()
            for seq in batch.confirmed:
                row = batch.row_by_seq[seq]
                metrics.EVENTS_PUBLISHED.labels(row.event_type).inc()
                with logs.work(request_id=row.request_id, traceparent=row.traceparent, event_id=str(row.event_id)):
                    logger.info("published event %s %s", row.event_type, row.event_id)
        except SQLAlchemyError as exc:
            # Not marked: they will be published again. A duplicate, never a loss.
            logger.warning("could not mark %d events published: %s", len(batch.confirmed), type(exc).__name__)
        finally:
            batch.db.close()
        if batch.failed:
            logger.warning("%d events were not confirmed; retrying them", batch.failed)
            self._schedule(1.0)
        else:
            more = self._woken or batch.size >= self._batch_size
            self._schedule(0 if more else self._poll_interval())

    def _abandon_batch(self) -> None:
        batch, self._batch = self._batch, None
        if batch is not None:
            try:
                batch.tx.rollback()
                batch.db.close()
            except SQLAlchemyError:
                pass

    # --- housekeeping ----------------------------------------------------------------
    def _report_broker(self, *, connected: bool) -> None:
        """Keep the broker connection's state where the API's readiness reads it (one row)."""
        self._reported_at = time.monotonic()
        status = self._tables.broker_status
        upsert = insert(status).values(id=1, connected=connected, changed_at=func.now(), seen_at=func.now())
        changed = status.c.connected != upsert.excluded.connected
        try:
            with self._engine.begin() as db:
                db.execute(
                    upsert.on_conflict_do_update(
                        index_elements=[status.c.id],
                        set_={
                            "connected": upsert.excluded.connected,
                            "changed_at": case((changed, func.now()), else_=status.c.changed_at),
                            "seen_at": func.now(),
                        },
                    )
                )
        except SQLAlchemyError as exc:  # readiness shows the report as stale, which it is
            logger.warning("could not report the broker's state: %s", type(exc).__name__)

    def _measure_archiver(self) -> None:
        """The WAL archive's gauges: when PostgreSQL last archived a segment, and last failed to."""
        self._last_archiver = time.monotonic()
        with self._engine.connect() as db:
            row = db.execute(_ARCHIVER).one()
        metrics.WAL_LAST_ARCHIVED.set(float(row.archived or 0))
        metrics.WAL_LAST_ARCHIVE_FAILURE.set(float(row.failed or 0))

    def _measure_backlog_if_due(self) -> None:
        """The outbox gauges, at most once a second: what waits, and for how long."""
        if time.monotonic() - self._last_measure < BACKLOG_EVERY_S:
            return
        self._last_measure = time.monotonic()
        with self._engine.connect() as db:
            pending, oldest = backlog(db, self._tables.outbox)
        metrics.OUTBOX_PENDING.set(pending)
        metrics.OUTBOX_OLDEST_AGE.set(oldest)
        if time.monotonic() - self._last_archiver >= ARCHIVER_EVERY_S:
            self._measure_archiver()
        if time.monotonic() - self._reported_at >= BROKER_REPORT_EVERY_S:  # still connected: say so
            self._report_broker(connected=True)

    def _prune_if_due(self) -> None:
        if time.monotonic() - self._last_prune < self._prune_every_s:
            return
        self._last_prune = time.monotonic()
        t = self._tables
        with self._engine.begin() as db:
            sent = db.execute(delete(t.outbox).where(t.outbox.c.published_at < func.now() - OUTBOX_RETENTION))
            db.execute(
                delete(t.processed_events).where(
                    t.processed_events.c.processed_at < func.now() - PROCESSED_EVENT_RETENTION
                )
            )
            db.execute(
                delete(t.idempotency_keys).where(
                    t.idempotency_keys.c.created_at < func.now() - IDEMPOTENCY_KEY_RETENTION
                )
            )
            db.execute(delete(t.refused_requests).where(t.refused_requests.c.minute < func.now() - REFUSAL_RETENTION))
        if sent.rowcount:
            logger.info("pruned %d published events", sent.rowcount)
