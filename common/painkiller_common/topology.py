"""The RabbitMQ topology: the shared exchanges, and each service's own queue.

Each service's broker user may configure only the shared exchanges and its own queues
(doc/security.md), so each declares its own queue: at `migrate`, before any process starts, so an
event published before its consumer ever ran still lands in the durable queue. Unroutable events
go to an alternate exchange's queue instead of vanishing; a message that keeps failing, or that
fails validation, goes to its queue's dead-letter queue.
"""

from dataclasses import dataclass

import pika
from pika.adapters.blocking_connection import BlockingChannel

from painkiller_common.broker import connection_parameters
from painkiller_common.contracts import EXCHANGE

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


def declare_with(url: str, queue: QueueSpec | None = None) -> None:
    """Declare the topology over a short-lived connection of its own."""
    connection = pika.BlockingConnection(connection_parameters(url))
    try:
        declare(connection.channel(), queue)
    finally:
        connection.close()
