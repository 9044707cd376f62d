"""Writing events: into the outbox, in the caller's transaction, next to the change they describe."""

from collections.abc import Iterable

from sqlalchemy import Table, insert
from sqlalchemy.orm import Session

from painkiller_common.contracts import Event


def emit(session: Session, outbox: Table, events: Iterable[Event]) -> None:
    rows = [
        {
            "event_id": event.event_id,
            "event_type": event.type,
            "aggregate_id": event.aggregate_id,
            "body": event.model_dump_json(),
        }
        for event in events
    ]
    if rows:
        session.execute(insert(outbox), rows)
