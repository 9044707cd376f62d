"""Writing events: into the outbox, in the same transaction as the change they describe.

A use case records its events on the unit of work (the request's session, the consumer's
transaction); the unit of work writes them to the outbox just before it commits, so an event is
stored exactly when its change is, and nothing else writes the outbox (doc/events.md).
"""

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Table, event, func, insert, select
from sqlalchemy.orm import Session

from painkiller_common.contracts import Event
from painkiller_common.observability import logs, tracing


@dataclass(frozen=True)
class Recorded:
    """An event, and the ids of the work that recorded it (logs.py), read when it was recorded."""

    event: Event
    request_id: str | None
    traceparent: str | None


class UnitOfWork(Session):
    """A session that collects the events of its changes and writes them on commit."""

    def __init__(self, *args: Any, outbox: Table, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.outbox = outbox
        self.events: list[Recorded] = []

    def record(self, *events: Event) -> None:
        ids = logs.REQUEST_ID.get(), tracing.traceparent()
        self.events.extend(Recorded(event, *ids) for event in events)


@event.listens_for(UnitOfWork, "before_commit")
def _write_events(session: UnitOfWork) -> None:
    events, session.events = session.events, []
    _insert(session, session.outbox, events)


@event.listens_for(UnitOfWork, "after_rollback")
def _forget_events(session: UnitOfWork) -> None:
    session.events = []  # their changes are gone too


def _insert(session: Session, outbox: Table, events: Iterable[Recorded]) -> None:
    rows = [
        {
            "event_id": recorded.event.event_id,
            "event_type": recorded.event.type,
            "aggregate_id": recorded.event.aggregate_id,
            "body": recorded.event.model_dump_json(),
            "request_id": recorded.request_id,
            "traceparent": recorded.traceparent,
        }
        for recorded in events
    ]
    if rows:
        session.execute(insert(outbox), rows)


def backlog(conn: Connection, outbox: Table) -> tuple[int, float]:
    """How many events wait to be published, and for how long the oldest has waited (seconds;
    0 when none waits): readiness reports it, the relay's gauges show it."""
    age = func.extract("epoch", func.now() - func.min(outbox.c.created_at))
    pending, oldest = conn.execute(select(func.count(), age).where(outbox.c.published_at.is_(None))).one()
    return pending, float(oldest or 0)
