"""The patient table, as the migrations build it."""

import uuid
from datetime import date, datetime
from typing import Any, Literal, get_args

from sqlalchemy import (
    ARRAY,
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    Double,
    ForeignKey,
    Identity,
    Index,
    Integer,
    MetaData,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    Uuid,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from painkiller_common.contracts import Sex
from painkiller_common.db.migrations import NAMING_CONVENTION
from painkiller_common.db.tables import event_tables, vital_range_checks

SEXES = get_args(Sex)  # the contract's values, checked by the database too


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Patient(Base):
    __tablename__ = "patients"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    mrn: Mapped[str | None] = mapped_column(String(64), unique=True)
    first_name: Mapped[str] = mapped_column(String(100))
    last_name: Mapped[str] = mapped_column(String(100))
    # Age is stored only when no birth date is known; otherwise it is derived when read.
    birth_date: Mapped[date | None] = mapped_column(Date)
    age: Mapped[int | None] = mapped_column(SmallInteger)
    sex: Mapped[str] = mapped_column(String(10))
    conditions: Mapped[list[str]] = mapped_column(ARRAY(String(200)))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # Bumped on every change and carried by its event, so consumers can ignore stale events.
    version: Mapped[int] = mapped_column(Integer, server_default="1")
    # Fed by measurement events: {vital: {"value", "measured_at", "measurement_id"}}.
    latest_vitals: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    # NEWS2 SpO2 scale: 2 only for hypercapnic respiratory failure with a prescribed 88-92% target.
    spo2_scale: Mapped[int] = mapped_column(SmallInteger, server_default="1")
    # {"ward", "room", "bed"} (contracts.Location): set by PATCH or an HL7 ADT message.
    location: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    discharged_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    risk: Mapped["RiskAssessmentRow | None"] = relationship(
        lazy="joined", cascade="all, delete-orphan", passive_deletes=True
    )

    __table_args__ = (
        CheckConstraint("spo2_scale IN (1, 2)", name="spo2_scale_known"),
        CheckConstraint("age IS NULL OR age BETWEEN 0 AND 150", name="age_range"),
        CheckConstraint("birth_date IS NOT NULL OR age IS NOT NULL", name="age_or_birth_date"),
        CheckConstraint(f"sex IN {SEXES}", name="sex_known"),
        Index("ix_patients_created_at_id", "created_at", "id"),
        # The ward's list (`?ward=`), in the list's order.
        Index("ix_patients_ward", text("(location ->> 'ward')"), "created_at", "id"),
        # Name search is a case-insensitive substring match: trigram indexes serve it.
        Index(
            "ix_patients_first_name_trgm",
            "first_name",
            postgresql_using="gin",
            postgresql_ops={"first_name": "gin_trgm_ops"},
        ),
        Index(
            "ix_patients_last_name_trgm",
            "last_name",
            postgresql_using="gin",
            postgresql_ops={"last_name": "gin_trgm_ops"},
        ),
    )


# `FOR UPDATE OF patients`: the risk row is outer-joined, and PostgreSQL cannot lock that side.
LOCK_PATIENT = {"of": Patient}


class VitalReading(Base):
    """The patient service's copy of readings, from measurement events (never the other database).

    A deleted reading stays as a tombstone (`deleted`), so a late `measurement.recorded` cannot
    bring it back. Rows go with their patient (right to erasure).
    """

    __tablename__ = "vital_readings"

    measurement_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    patient_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("patients.id", ondelete="CASCADE"))
    measured_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    deleted: Mapped[bool] = mapped_column(Boolean, server_default="false")
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

    __table_args__ = (*vital_range_checks(), Index("ix_vital_readings_patient_time", "patient_id", "measured_at"))


class RiskAssessmentRow(Base):
    """The latest risk assessment of a patient (risk.RiskAssessment), recomputed on every reading."""

    __tablename__ = "risk_assessments"

    patient_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("patients.id", ondelete="CASCADE"), primary_key=True)
    revision: Mapped[int] = mapped_column(Integer)  # orders this patient's risk_changed events
    news2_total: Mapped[int | None] = mapped_column(SmallInteger)
    band: Mapped[str | None] = mapped_column(String(12))
    band_rank: Mapped[int | None] = mapped_column(SmallInteger)  # for "at least medium" in SQL
    bp_category: Mapped[str | None] = mapped_column(String(24))
    based_on: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    assessment: Mapped[dict[str, Any]] = mapped_column(JSONB)

    __table_args__ = (Index("ix_risk_assessments_ward_view", "band_rank", "news2_total", "patient_id"),)


class WebhookSubscription(Base):
    """Where to POST which patient events (doc/alerts.md). The secret signs each delivery; after a
    rotation the previous one signs too, until `previous_secret_until`, so receivers can switch."""

    __tablename__ = "webhook_subscriptions"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    url: Mapped[str] = mapped_column(String(2048))
    events: Mapped[list[str]] = mapped_column(ARRAY(String(64)))
    description: Mapped[str | None] = mapped_column(String(500))
    secret: Mapped[str] = mapped_column(String(100))
    previous_secret: Mapped[str | None] = mapped_column(String(100))
    previous_secret_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_by: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    __table_args__ = (Index("ix_webhook_subscriptions_created_at_id", "created_at", "id"),)


# A webhook delivery's state, as the API shows it and the database checks it.
DeliveryState = Literal["pending", "delivered", "failed"]
DELIVERY_STATES = get_args(DeliveryState)


class WebhookDelivery(Base):
    """One event for one subscription: its id is the `webhook-id` every attempt sends, and its body
    is fixed when the event arrives, so a receiver sees the same message however often it is sent."""

    __tablename__ = "webhook_deliveries"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    subscription_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("webhook_subscriptions.id", ondelete="CASCADE"))
    event_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    event_type: Mapped[str] = mapped_column(String(64))
    body: Mapped[str] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(10), server_default="pending")
    attempts: Mapped[int] = mapped_column(Integer, server_default="0")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    next_attempt_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    give_up_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))  # retries stop here: failed
    last_status_code: Mapped[int | None] = mapped_column(SmallInteger)
    last_error: Mapped[str | None] = mapped_column(String(300))

    __table_args__ = (
        CheckConstraint(f"state IN {DELIVERY_STATES}", name="state_known"),
        UniqueConstraint("subscription_id", "event_id"),  # an event arriving twice: one delivery
        Index("ix_webhook_deliveries_due", "next_attempt_at", postgresql_where=text("state = 'pending'")),
        Index("ix_webhook_deliveries_subscription_id_created_at", "subscription_id", "created_at", "id"),
    )


class WebhookAttempt(Base):
    """Each POST of a delivery, and what came of it."""

    __tablename__ = "webhook_attempts"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    delivery_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("webhook_deliveries.id", ondelete="CASCADE"))
    attempt: Mapped[int] = mapped_column(Integer)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    status_code: Mapped[int | None] = mapped_column(SmallInteger)
    error: Mapped[str | None] = mapped_column(String(300))
    duration_ms: Mapped[int] = mapped_column(Integer)

    __table_args__ = (Index("ix_webhook_attempts_delivery_id", "delivery_id", "attempt"),)


class WardChange(Base):
    """A change a ward's board shows: a patient's reading, admission, move, discharge or edit,
    written by a trigger on `patients` whoever changes the row (the API, the consumer, an import,
    an ADT message), read by the ward's event stream (patients/ward_stream.py). Ids only; `txid`
    is the writing transaction's, so that a reader never skips a row committed late."""

    __tablename__ = "ward_changes"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    txid: Mapped[int] = mapped_column(BigInteger, server_default=text("(pg_current_xact_id()::text::bigint)"))
    ward: Mapped[str] = mapped_column(String(50))
    patient_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    kind: Mapped[str] = mapped_column(String(16))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=text("now()"))

    __table_args__ = (Index("ix_ward_changes_ward", "ward", "txid", "id"), Index("ix_ward_changes_at", "at"))


EVENT_TABLES = event_tables(Base.metadata)
# The role the API, relay and consumer act as (a member of it logs in); the migrations grant it.
RUNTIME_ROLE = "painkiller_patient_runtime"
