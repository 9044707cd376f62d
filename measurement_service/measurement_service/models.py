"""The measurement table, as the migrations build it."""

import uuid
from datetime import datetime

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    DateTime,
    Double,
    Index,
    Integer,
    MetaData,
    SmallInteger,
    String,
    Text,
    Uuid,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from painkiller_common.db.migrations import NAMING_CONVENTION
from painkiller_common.db.tables import event_tables, vital_range_checks


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Measurement(Base):
    __tablename__ = "measurements"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    # No foreign key: patients live in the patient service's database.
    patient_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    measured_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    recorded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    temperature_c: Mapped[float | None] = mapped_column(Double)
    heart_rate_bpm: Mapped[int | None] = mapped_column(SmallInteger)
    respiratory_rate_bpm: Mapped[int | None] = mapped_column(SmallInteger)
    spo2_percent: Mapped[int | None] = mapped_column(SmallInteger)
    systolic_mmhg: Mapped[int | None] = mapped_column(SmallInteger)
    diastolic_mmhg: Mapped[int | None] = mapped_column(SmallInteger)
    weight_kg: Mapped[float | None] = mapped_column(Double)
    height_cm: Mapped[float | None] = mapped_column(Double)
    glucose_mg_dl: Mapped[float | None] = mapped_column(Double)
    on_oxygen: Mapped[bool | None] = mapped_column(Boolean)
    consciousness: Mapped[str | None] = mapped_column(String(12))
    source: Mapped[str | None] = mapped_column(String(100))

    __table_args__ = (
        # The API refuses these first; the database refuses them too, whoever writes.
        CheckConstraint("(systolic_mmhg IS NULL) = (diastolic_mmhg IS NULL)", name="bp_pair"),
        CheckConstraint("diastolic_mmhg < systolic_mmhg", name="bp_order"),
        *vital_range_checks(),
        # Newest first, per patient and overall: the two listing orders.
        Index("ix_measurements_patient_time", "patient_id", "measured_at", "id"),
        # A device's reading is stored once however often it is resent (manual ones have no source).
        Index(
            "uq_measurements_natural_key",
            "patient_id",
            "measured_at",
            "source",
            unique=True,
            postgresql_where=text("source IS NOT NULL"),
        ),
        Index("ix_measurements_time", "measured_at", "id"),
    )


class KnownPatient(Base):
    """Which patients exist, from `patient.*` events: ids, versions and MRNs, no other patient data.

    The MRN is here because HL7 v2 names a patient by it (PID-3), never by our id (doc/hl7.md).
    A deleted patient stays as a tombstone, its MRN erased, so a late or redelivered
    `patient.created` cannot bring them back. Version 0 marks a row the API added after asking
    the patient service (its MRN arrives with its event).
    """

    __tablename__ = "known_patients"

    patient_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    version: Mapped[int] = mapped_column(Integer)
    deleted: Mapped[bool] = mapped_column(Boolean, server_default="false")
    mrn: Mapped[str | None] = mapped_column(String(64))

    __table_args__ = (Index("ix_known_patients_mrn", "mrn", postgresql_where=text("mrn IS NOT NULL")),)


class HL7Message(Base):
    """Every HL7 v2 message received over MLLP, raw, with what became of it and the ACK it got
    (doc/hl7.md). Held: its patient's MRN is not known yet; `reading` is what it will record."""

    __tablename__ = "hl7_messages"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    sending_application: Mapped[str] = mapped_column(String(227))
    sending_facility: Mapped[str] = mapped_column(String(227))
    control_id: Mapped[str] = mapped_column(String(199))
    message_type: Mapped[str] = mapped_column(String(15))
    sender_address: Mapped[str | None] = mapped_column(String(64))
    mrn: Mapped[str | None] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(12))
    ack_code: Mapped[str] = mapped_column(String(2))
    detail: Mapped[str | None] = mapped_column(Text)
    reading: Mapped[dict[str, object] | None] = mapped_column(JSONB)
    patient_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)  # once known: a deleted patient's are erased
    measurement_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    released_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    raw: Mapped[str] = mapped_column(Text)

    __table_args__ = (
        CheckConstraint(
            "state IN ('stored', 'duplicate', 'held', 'released', 'expired', 'error', 'refused')", name="state"
        ),
        CheckConstraint("ack_code IN ('AA', 'AE', 'AR')", name="ack_code"),
        # A resent message (same sender and MSH-10) is accepted once; refused ones may be resent.
        Index(
            "uq_hl7_messages_sender_control_id",
            "sending_application",
            "sending_facility",
            "control_id",
            unique=True,
            postgresql_where=text("ack_code = 'AA'"),
        ),
        Index("ix_hl7_messages_held", "mrn", postgresql_where=text("state = 'held'")),
        Index("ix_hl7_messages_patient_id", "patient_id"),
        Index("ix_hl7_messages_received_at", "received_at"),
    )


EVENT_TABLES = event_tables(Base.metadata)
# The role the API, relay and consumer act as (a member of it logs in); the migrations grant it.
RUNTIME_ROLE = "painkiller_measurement_runtime"
