"""The tables every service has for events and retries: outbox, processed events, idempotency keys."""

from dataclasses import dataclass

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Identity,
    Index,
    MetaData,
    PrimaryKeyConstraint,
    SmallInteger,
    String,
    Table,
    Text,
    Uuid,
    func,
)


@dataclass(frozen=True)
class EventTables:
    outbox: Table
    processed_events: Table
    idempotency_keys: Table


def event_tables(metadata: MetaData) -> EventTables:
    outbox = Table(
        "outbox",
        metadata,
        # Assigned at insert; rows of one aggregate are serialised by the aggregate's row lock, so
        # per aggregate this is commit order. The relay selects by published_at, never "seq > last".
        Column("seq", BigInteger, Identity(), primary_key=True),
        Column("event_id", Uuid, nullable=False, unique=True),
        Column("event_type", String(64), nullable=False),
        Column("aggregate_id", Uuid, nullable=False),
        Column("body", Text, nullable=False),  # the exact JSON published
        Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        Column("published_at", DateTime(timezone=True)),
        Index("ix_outbox_pending", "seq", postgresql_where="published_at IS NULL"),
        Index("ix_outbox_published_at", "published_at", postgresql_where="published_at IS NOT NULL"),
    )
    processed = Table(
        "processed_events",
        metadata,
        Column("event_id", Uuid, primary_key=True),
        Column("event_type", String(64), nullable=False),
        Column("processed_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        Index("ix_processed_events_processed_at", "processed_at"),
    )
    idempotency = Table(
        "idempotency_keys",
        metadata,
        Column("scope", String(200), nullable=False),  # method and path: a key is per route
        Column("key", String(200), nullable=False),
        Column("fingerprint", String(64), nullable=False),
        Column("status_code", SmallInteger),
        Column("body", Text),
        Column("location", String(300)),
        Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        PrimaryKeyConstraint("scope", "key"),
        Index("ix_idempotency_keys_created_at", "created_at"),
    )
    return EventTables(outbox=outbox, processed_events=processed, idempotency_keys=idempotency)
