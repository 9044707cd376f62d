"""The consumer loop: apply each event once, in the consumer's own transaction, then ack.

Deliveries that arrive together (up to the prefetch, or within 20 ms) share one transaction and
are acked after its commit: under load that is what keeps the event lag low.

The event id goes into `processed_events` in the same transaction as the event's effect, so a
redelivered event (a relay that published twice, a consumer killed between commit and ack) is
recognised and only acked. Acks come after the commit, never before. While the consumer's own
database is down it waits and retries the same message instead of rejecting it, so an outage does
not burn a good message's delivery limit; any other failure is rejected back to the queue, and
after the queue's delivery limit the broker moves the message to its dead-letter queue.
"""

import logging
import signal
import time
import uuid
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pika
from opentelemetry.trace import SpanKind
from pika.adapters.blocking_connection import BlockingChannel
from pika.exceptions import AMQPError
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import sessionmaker

from painkiller_common.contracts import Event, parse_event
from painkiller_common.db import database_unavailable
from painkiller_common.db.outbox import UnitOfWork
from painkiller_common.db.statements import Statement, rows_json
from painkiller_common.db.tables import EventTables
from painkiller_common.events.broker import connection_parameters, run_reconnecting
from painkiller_common.events.topology import QueueSpec, check
from painkiller_common.observability import logs, metrics, tracing

logger = logging.getLogger(__name__)


class Batch:
    """What a service does with the new events of one batch, in the consumer's transaction.

    A service subclasses it with its own `apply`, a `functools.singledispatchmethod` with one
    method per event class it takes (the handlers, keyed by class); state shared by the batch's
    events lives on the instance, and `close` runs once after them. Events of a class no method
    takes are recorded as processed and otherwise ignored.
    """

    def __init__(self, session: UnitOfWork) -> None:
        self.session = session

    def apply(self, event: Event) -> None:
        """An event this service does not take."""

    def close(self) -> None:
        """Work once per batch, after its events (e.g. what several of them touched)."""


# How long a delivery may wait for others to share its transaction.
BATCH_WAIT_S = 0.02
# How long an idle consumer blocks on the broker at a time: it wakes only to say it is alive and to
# see a stop asked for (waking every BATCH_WAIT_S instead cost an idle consumer 1 % of a core).
IDLE_WAIT_S = 1.0


@dataclass(frozen=True)
class Delivery:
    tag: int
    message_id: str | None
    user_id: str | None  # the publishing broker user, checked by RabbitMQ against the connection
    type: str | None  # the event type the publisher declared, for the metrics of a refused one
    body: bytes
    origin: "Origin"


@dataclass(frozen=True)
class Origin:
    """The request an event came from (logs.py), from its message's headers."""

    request_id: str | None = None
    traceparent: str | None = None

    @classmethod
    def of(cls, headers: dict[str, Any] | None) -> "Origin":
        headers = headers or {}
        request_id, traceparent = headers.get("x-request-id"), headers.get("traceparent")
        return cls(
            request_id if isinstance(request_id, str) else None, traceparent if isinstance(traceparent, str) else None
        )

    def work(self, event_id: str | None = None) -> AbstractContextManager[None]:
        return logs.work(request_id=self.request_id, traceparent=self.traceparent, event_id=event_id)


class Consumer:
    def __init__(
        self,
        *,
        session_factory: sessionmaker[UnitOfWork],
        tables: EventTables,
        queue: QueueSpec,
        batch: Callable[[UnitOfWork], Batch],
        amqp_url: str,
        producer: str | None = None,
        prefetch: int = 200,
        heartbeat: metrics.Heartbeat | None = None,
    ) -> None:
        self._session_factory = session_factory
        # The batch's event ids in one statement: those it returns are new to this service.
        self._mark_processed = Statement.compile(
            f"INSERT INTO {tables.processed_events.name} (event_id, event_type)"
            " SELECT event_id, event_type FROM json_to_recordset(:events::json) AS e(event_id uuid, event_type text)"
            " ON CONFLICT DO NOTHING RETURNING event_id"
        )
        self._queue = queue
        self._batch = batch
        self._heartbeat = heartbeat or metrics.Heartbeat()
        self._amqp_url = amqp_url
        self._producer = producer  # the only broker user whose events are applied
        self._prefetch = prefetch  # also the largest batch
        self._stopping = False
        self._connection: pika.BlockingConnection | None = None

    def run_forever(self) -> None:
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        run_reconnecting(self._consume, stopping=lambda: self._stopping)
        logger.info("consumer stopped")

    def _on_signal(self, signum: int, frame: object) -> None:
        # The consume loop wakes at least every IDLE_WAIT_S, sees this and closes the connection;
        # deliveries not yet applied are redelivered.
        self._stopping = True

    def _consume(self) -> None:
        self._connection = pika.BlockingConnection(connection_parameters(self._amqp_url))
        channel = self._connection.channel()
        check(channel, self._queue)  # `migrate` declared it; this user may not
        channel.basic_qos(prefetch_count=self._prefetch)
        pending: list[Delivery] = []
        channel.basic_consume(
            self._queue.name,
            lambda _, method, properties, body: pending.append(_delivery(method.delivery_tag, properties, body)),
        )
        logger.info("consuming %s", self._queue.name)
        oldest = 0.0
        try:
            while not self._stopping:
                before = len(pending)
                # Returns as soon as deliveries came (their callbacks run in it), or after the wait:
                # a batch begun waits only BATCH_WAIT_S for more; an idle consumer blocks longer.
                self._connection.process_data_events(time_limit=BATCH_WAIT_S if pending else IDLE_WAIT_S)
                self._heartbeat.beat()
                if before == 0 and pending:
                    oldest = time.monotonic()
                # Apply what has come when the queue pauses, the batch is full, or it has waited enough.
                if pending and (
                    len(pending) == before or len(pending) >= self._prefetch or time.monotonic() - oldest > BATCH_WAIT_S
                ):
                    batch, pending[:] = list(pending), []  # what arrives while it is applied waits
                    self._settle(channel, batch)
        finally:
            if self._connection.is_open:
                self._connection.close()

    def _settle(self, channel: BlockingChannel, deliveries: list[Delivery]) -> None:
        """Apply a batch in one transaction and ack it; if that fails, one by one, so that only
        the bad message is rejected (back to its queue, until the delivery limit)."""
        parsed = []
        for delivery in deliveries:
            try:
                parsed.append((delivery, self._accept(delivery)))
            except ValueError as exc:
                # Forged or invalid: it will never apply, so it goes to the dead-letter queue now.
                logger.error("event %s refused and dead-lettered: %s", delivery.message_id, _first_line(exc))
                channel.basic_reject(delivery.tag, requeue=False)
                metrics.EVENTS_DEAD_LETTERED.labels(delivery.type or "unknown").inc()
        try:
            origins = {event.event_id: delivery.origin for delivery, event in parsed}
            self._apply_waiting_for_database([event for _, event in parsed], origins)
        except AMQPError:
            raise  # the connection went: nothing was acked, the broker redelivers
        except Exception:
            if len(parsed) == 1:
                logger.exception("event %s failed; rejecting it (delivery limit applies)", parsed[0][0].message_id)
                channel.basic_nack(parsed[0][0].tag, requeue=True)
            else:
                for delivery, _ in parsed:
                    self._settle(channel, [delivery])
            return
        if parsed:
            # One ack for the batch (a frame per event cost the broker and this loop more than the
            # rest of its handling): deliveries arrive in tag order, and every one up to the
            # batch's last is settled by now, applied here or rejected above.
            channel.basic_ack(parsed[-1][0].tag, multiple=True)

    def _accept(self, delivery: Delivery) -> Event:
        """The event, if its producer is the expected one and it is valid; else ValueError."""
        if self._producer is not None and delivery.user_id != self._producer:
            raise ValueError(f"published by {delivery.user_id or 'an unnamed user'}, not {self._producer}")
        return parse_event(delivery.body)

    def _apply_waiting_for_database(self, events: list[Event], origins: dict[uuid.UUID, Origin]) -> None:
        backoff = 0.5
        while True:
            try:
                self.apply_all(events, origins)
                return
            except DBAPIError as exc:
                if self._stopping or not database_unavailable(exc):
                    raise
                logger.warning("database unavailable (%s); retrying %d events", type(exc.orig).__name__, len(events))
                assert self._connection is not None
                self._heartbeat.beat()  # waiting for the database on purpose is not being stuck
                self._connection.sleep(backoff)  # keeps heartbeats going while we wait
                backoff = min(backoff * 2, 15.0)

    def apply(self, event: Event) -> bool:
        """Apply `event` once; False if it had been applied before."""
        return self.apply_all([event]) == [True]

    def apply_all(self, events: list[Event], origins: dict[uuid.UUID, Origin] | None = None) -> list[bool]:
        """Apply each event not applied before, all in one transaction; which ones were new. Each
        is applied, and logged, under the ids of the request it came from (`origins`)."""
        if not events:
            return []
        origins = origins or {}
        origin_of = {event.event_id: origins.get(event.event_id, Origin()) for event in events}
        # What the batch emits as a whole carries its request's ids when all of it came from one.
        distinct = set(origin_of.values())
        shared = distinct.pop() if len(distinct) == 1 else Origin()
        with self._session_factory() as session, session.begin():
            marks = rows_json([{"event_id": e.event_id, "event_type": e.type} for e in events])
            new = {row["event_id"] for row in self._mark_processed.all_sync(session, {"events": marks})}
            applied, batch = [], self._batch(session)
            for event in events:
                first_time = event.event_id in new
                new.discard(event.event_id)  # the same event twice in one batch: once
                if first_time:
                    origin = origin_of[event.event_id]
                    apply = tracing.span(f"apply {event.type}", SpanKind.CONSUMER, origin.traceparent)
                    with origin.work(str(event.event_id)), apply:
                        batch.apply(event)
                applied.append(first_time)
            with shared.work():
                batch.close()
        now = datetime.now(UTC)
        for event, first_time in zip(events, applied, strict=True):
            with origin_of[event.event_id].work(str(event.event_id)):
                if first_time:
                    logger.info("applied event %s %s", event.type, event.event_id)
                    metrics.EVENTS_APPLIED.labels(event.type).inc()
                    metrics.EVENT_LAG.labels(event.type).observe(max((now - event.occurred_at).total_seconds(), 0))
                else:
                    logger.info("duplicate event %s %s ignored", event.type, event.event_id)
        return applied


def _delivery(tag: int, properties: pika.BasicProperties, body: bytes) -> Delivery:
    origin = Origin.of(properties.headers)
    return Delivery(tag, properties.message_id, properties.user_id, properties.type, body, origin)


def _first_line(exc: Exception) -> str:
    # pydantic's message names the field and rule; it never needs the whole input echoed.
    return str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__
