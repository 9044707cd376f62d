"""The RabbitMQ topology: the shared exchanges, and each service's own queues.

Each service's `migrate` declares it all, as the broker's admin user (no running process may
configure anything, doc/security.md), before any process starts, so an event published before
its consumer ever ran still lands in the durable queue. The relays and consumers only check that
what they use is there. Unroutable events go to an alternate exchange's queue instead of
vanishing; a message that keeps failing, or that fails validation, goes to its queue's
dead-letter queue.
"""

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import pika
from pika.adapters.blocking_connection import BlockingChannel

from painkiller_common.contracts import EXCHANGE
from painkiller_common.events.broker import connection_parameters

UNROUTED = "painkiller.unrouted"
DEAD_LETTERS = "painkiller.dead"
# Debian's RabbitMQ 3.10 sets no delivery limit on quorum queues: without one, a poison message
# would be redelivered for ever.
DELIVERY_LIMIT = 5


@dataclass(frozen=True)
class QueueSpec:
    name: str
    bindings: tuple[str, ...]

    @property
    def dead_letter_queue(self) -> str:
        return f"{self.name}.dead"


PATIENT_EVENTS_FOR_MEASUREMENTS = QueueSpec("measurement_service.patient_events", ("patient.*",))
MEASUREMENT_EVENTS_FOR_PATIENTS = QueueSpec("patient_service.measurement_events", ("measurement.*",))
# The patient service's webhook dispatcher turns its own service's events into alerts (doc/alerts.md).
PATIENT_EVENTS_FOR_WEBHOOKS = QueueSpec("patient_service.webhook_events", ("patient.*",))
# The queues each service reads: declared by its `migrate`, readable by its broker user only.
QUEUES = {
    "patient": (MEASUREMENT_EVENTS_FOR_PATIENTS, PATIENT_EVENTS_FOR_WEBHOOKS),
    "measurement": (PATIENT_EVENTS_FOR_MEASUREMENTS,),
}

QUORUM = {"x-queue-type": "quorum"}


def declare(channel: BlockingChannel, queue: QueueSpec | None = None) -> None:
    """The shared exchanges and, if given, `queue` with its dead-letter queue and bindings."""
    channel.exchange_declare(UNROUTED, "fanout", durable=True)
    channel.queue_declare(UNROUTED, durable=True, arguments=QUORUM)
    channel.queue_bind(UNROUTED, UNROUTED)
    channel.exchange_declare(EXCHANGE, "topic", durable=True, arguments={"alternate-exchange": UNROUTED})
    channel.exchange_declare(DEAD_LETTERS, "direct", durable=True)
    if queue is not None:
        channel.queue_declare(queue.dead_letter_queue, durable=True, arguments=QUORUM)
        channel.queue_bind(queue.dead_letter_queue, DEAD_LETTERS, routing_key=queue.name)
        channel.queue_declare(
            queue.name,
            durable=True,
            arguments={
                **QUORUM,
                "x-delivery-limit": DELIVERY_LIMIT,
                "x-dead-letter-exchange": DEAD_LETTERS,
                "x-dead-letter-routing-key": queue.name,
            },
        )
        for key in queue.bindings:
            channel.queue_bind(queue.name, EXCHANGE, routing_key=key)


def check(channel: BlockingChannel, queue: QueueSpec | None = None) -> None:
    """That the events exchange and, if given, `queue` exist, without the right to declare them.
    A missing one closes the channel (404), and the worker tries again after a back-off: until
    `migrate` has run, it says so in its log instead of publishing into nothing."""
    channel.exchange_declare(EXCHANGE, passive=True)
    if queue is not None:
        channel.queue_declare(queue.name, passive=True)


def declare_with(url: str, queues: Sequence[QueueSpec]) -> None:
    """Declare the shared exchanges and `queues` over a short-lived connection of its own."""
    with _channel(url) as channel:
        declare(channel)
        for queue in queues:
            declare(channel, queue)


def check_with(url: str) -> None:
    """`check` the events exchange over a short-lived connection of its own."""
    with _channel(url) as channel:
        check(channel)


@contextmanager
def _channel(url: str) -> Iterator[BlockingChannel]:
    connection = pika.BlockingConnection(connection_parameters(url))
    try:
        yield connection.channel()
    finally:
        if connection.is_open:
            connection.close()
