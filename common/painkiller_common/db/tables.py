"""The tables every service has: outbox, processed events, idempotency keys, and the audit trail."""

from dataclasses import dataclass

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    Identity,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    SmallInteger,
    String,
    Table,
    Text,
    Uuid,
    func,
)
from sqlalchemy.dialects.postgresql import ARRAY

from painkiller_common.contracts import VITAL_RANGES


@dataclass(frozen=True)
class EventTables:
    outbox: Table
    processed_events: Table
    idempotency_keys: Table
    audit_events: Table
    broker_status: Table
    refused_requests: Table


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
        # The request that caused the event (logs.py): passed on in the message's headers.
        Column("request_id", String(64)),
        Column("traceparent", String(55)),
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
        # The patients the stored answer is about: once one is deleted, it is not replayed.
        Column("patient_ids", ARRAY(Uuid), nullable=False, server_default="{}"),
        # The records it reports as stored: once one is deleted, it is not replayed either
        # (a retry must not be told "created, here" about a record that is gone).
        Column("record_ids", ARRAY(Uuid), nullable=False, server_default="{}"),
        Column("erased_at", DateTime(timezone=True)),
        Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        PrimaryKeyConstraint("scope", "key"),
        Index("ix_idempotency_keys_created_at", "created_at"),
        Index("ix_idempotency_keys_patient_ids", "patient_ids", postgresql_using="gin"),
    )
    # One row: the relay's broker connection as it last reported it (readiness reads it).
    broker_status = Table(
        "broker_status",
        metadata,
        Column("id", SmallInteger, primary_key=True, server_default="1"),
        Column("connected", Boolean, nullable=False),
        Column("changed_at", DateTime(timezone=True), nullable=False),
        Column("seen_at", DateTime(timezone=True), nullable=False),
        CheckConstraint("id = 1", name="one_row"),
    )
    return EventTables(
        outbox=outbox,
        processed_events=processed,
        idempotency_keys=idempotency,
        audit_events=audit_table(metadata),
        broker_status=broker_status,
        refused_requests=refused_table(metadata),
    )


def audit_table(metadata: MetaData) -> Table:
    """Who read or changed which record, one row per record touched (HIPAA 164.312(b)).

    Append-only: the runtime role may INSERT and SELECT it, never UPDATE or DELETE (the
    migrations grant that), and nothing prunes it. Ids only, never names or other PHI. A row's
    `id` and `at` are the server's: the runtime role may not insert either (AUDIT_CALLER_COLUMNS).
    """
    return Table(
        "audit_events",
        metadata,
        Column("id", BigInteger, Identity(always=True), primary_key=True),
        Column("at", DateTime(timezone=True), nullable=False, server_default=func.clock_timestamp()),
        Column("actor", String(255), nullable=False),  # the token's `sub`; "anonymous" without one
        Column("client_id", String(255)),
        Column("action", String(16), nullable=False),
        Column("resource_type", String(32), nullable=False),
        Column("resource_id", Uuid),
        Column("patient_id", Uuid),
        Column("status", SmallInteger, nullable=False),
        Column("request_id", String(64)),
        Column("client_address", String(64)),
        Index("ix_audit_events_patient_id", "patient_id", "id"),
    )


def refused_table(metadata: MetaData) -> Table:
    """Requests refused for want of a valid token, counted per client address, status and minute.

    A row each in the audit trail would let an unauthenticated flood grow it without bound, 100
    rows a second per address: these are counted instead, and kept REFUSAL_RETENTION (relay.py).
    Refusals of a known caller (403, 404, 409...) stay rows of the audit trail.
    """
    return Table(
        "refused_requests",
        metadata,
        Column("minute", DateTime(timezone=True), nullable=False),
        Column("client_address", String(64), nullable=False),
        Column("status", SmallInteger, nullable=False),
        Column("requests", Integer, nullable=False),
        PrimaryKeyConstraint("minute", "client_address", "status"),
    )


def vital_range_checks() -> list[CheckConstraint]:
    """The database refuses a vital outside its range too, whoever writes (contracts.VITAL_RANGES)."""
    return [
        CheckConstraint(f"{name} BETWEEN {low:g} AND {high:g}", name=f"{name}_range")
        for name, (low, high) in VITAL_RANGES.items()
    ]
