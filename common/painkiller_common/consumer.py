"""The consumer loop: apply each event once, in the consumer's own transaction, then ack.

The event id goes into `processed_events` in the same transaction as the event's effect, so a
redelivered event (a relay that published twice, a consumer killed between commit and ack) is
recognised and only acked. Acks come after the commit, never before. While the consumer's own
database is down it waits and retries the same message instead of rejecting it, so an outage does
not burn a good message's delivery limit; any other failure is rejected back to the queue, and
after the queue's delivery limit the broker moves the message to its dead-letter queue.
"""

import logging
import signal
from collections.abc import Callable

import pika
from pika.adapters.blocking_connection import BlockingChannel
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from painkiller_common.broker import connection_parameters, run_reconnecting
from painkiller_common.contracts import Event, parse_event
from painkiller_common.tables import EventTables
from painkiller_common.topology import QueueSpec, declare

logger = logging.getLogger(__name__)

Handler = Callable[[Session, Event], None]


class Consumer:
    def __init__(
        self,
        *,
        session_factory: sessionmaker[Session],
        tables: EventTables,
        queue: QueueSpec,
        handlers: dict[str, Handler],
        amqp_url: str,
        prefetch: int = 50,
    ) -> None:
        self._session_factory = session_factory
        self._processed = tables.processed_events
        self._queue = queue
        self._handlers = handlers
        self._amqp_url = amqp_url
        self._prefetch = prefetch
        self._stopping = False
        self._connection: pika.BlockingConnection | None = None

    def run_forever(self) -> None:
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        run_reconnecting(self._consume, stopping=lambda: self._stopping)
        logger.info("consumer stopped")

    def _on_signal(self, signum: int, frame: object) -> None:
        self._stopping = True
        if self._connection is not None and self._connection.is_open:
            self._connection.add_callback_threadsafe(self._connection.close)

    def _consume(self) -> None:
        self._connection = pika.BlockingConnection(connection_parameters(self._amqp_url))
        channel = self._connection.channel()
        declare(channel)
        channel.basic_qos(prefetch_count=self._prefetch)
        channel.basic_consume(self._queue.name, self._on_message, auto_ack=False)
        logger.info("consuming %s", self._queue.name)
        try:
            channel.start_consuming()
        finally:
            if self._connection.is_open:
                self._connection.close()

    def _on_message(
        self, channel: BlockingChannel, method: pika.spec.Basic.Deliver, properties: pika.BasicProperties, body: bytes
    ) -> None:
        try:
            event = parse_event(body)
            self._apply_waiting_for_database(event)
        except Exception:
            logger.exception("event %s failed; rejecting it (delivery limit applies)", properties.message_id)
            channel.basic_nack(method.delivery_tag, requeue=True)
            return
        channel.basic_ack(method.delivery_tag)

    def _apply_waiting_for_database(self, event: Event) -> None:
        backoff = 0.5
        while True:
            try:
                self.apply(event)
                return
            except OperationalError as exc:
                if self._stopping:
                    raise
                logger.warning("database unavailable (%s); retrying event %s", type(exc.orig).__name__, event.event_id)
                assert self._connection is not None
                self._connection.sleep(backoff)  # keeps heartbeats going while we wait
                backoff = min(backoff * 2, 15.0)

    def apply(self, event: Event) -> bool:
        """Apply `event` once; False if it had been applied before."""
        event_type: str = event.type  # type: ignore[attr-defined]
        with self._session_factory() as session, session.begin():
            first_time = session.execute(
                insert(self._processed)
                .values(event_id=event.event_id, event_type=event_type)
                .on_conflict_do_nothing()
                .returning(self._processed.c.event_id)
            ).first()
            if first_time is None:
                logger.info("duplicate event %s %s ignored", event_type, event.event_id)
                return False
            handler = self._handlers.get(event_type)
            if handler is not None:
                handler(session, event)
        logger.info("applied event %s %s", event_type, event.event_id)
        return True
