"""The resources as the APIs return them, and the events that carry them between services.

Defined once here and imported by producer and consumer alike, so the two cannot drift apart.
Each event is versioned (`version`, the schema version) and ordered per aggregate
(`aggregate_version`): a consumer ignores an event older than what it already applied.
"""

import uuid
from datetime import UTC, date, datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

Sex = Literal["male", "female", "other", "unknown"]
Consciousness = Literal["alert", "confusion", "voice", "pain", "unresponsive"]

EXCHANGE = "painkiller.events"

# The observation fields of a reading, in the order the API documents them.
VITALS = (
    "temperature_c",
    "heart_rate_bpm",
    "respiratory_rate_bpm",
    "spo2_percent",
    "systolic_mmhg",
    "diastolic_mmhg",
    "weight_kg",
    "height_cm",
    "glucose_mg_dl",
    "on_oxygen",
    "consciousness",
)


class PatientRecord(BaseModel):
    """A patient as `GET /api/v1/patient/{id}` returns it (less what other services feed in)."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    mrn: str | None
    first_name: str
    last_name: str
    age: int
    birth_date: date | None
    sex: Sex
    conditions: list[str]
    spo2_scale: Literal[1, 2] = Field(
        default=1, description="NEWS2 SpO2 scale: 2 only for hypercapnic respiratory failure (target 88-92%)."
    )
    created_at: datetime
    updated_at: datetime


class MeasurementRecord(BaseModel):
    """A reading as `GET /api/v1/measures/{id}` returns it."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    patient_id: uuid.UUID
    measured_at: datetime
    recorded_at: datetime = Field(description="When the service stored the reading.")
    temperature_c: float | None
    heart_rate_bpm: int | None
    respiratory_rate_bpm: int | None
    spo2_percent: int | None
    systolic_mmhg: int | None
    diastolic_mmhg: int | None
    weight_kg: float | None
    height_cm: float | None
    glucose_mg_dl: float | None
    on_oxygen: bool | None
    consciousness: Consciousness | None
    source: str | None


class PatientRef(BaseModel):
    id: uuid.UUID


class MeasurementRef(BaseModel):
    id: uuid.UUID
    patient_id: uuid.UUID


def _now() -> datetime:
    return datetime.now(UTC)


class RiskChange(BaseModel):
    patient_id: uuid.UUID
    previous_band: str | None
    band: str
    news2_total: int
    based_on: datetime = Field(description="When the newest reading behind the assessment was measured.")


class Event(BaseModel):
    event_id: uuid.UUID = Field(default_factory=uuid.uuid4)
    version: int = 1
    occurred_at: datetime = Field(default_factory=_now)
    aggregate_id: uuid.UUID
    aggregate_version: int = Field(ge=1, description="Orders the events of one aggregate.")


class PatientCreated(Event):
    type: Literal["patient.created"] = "patient.created"
    payload: PatientRecord


class PatientUpdated(Event):
    type: Literal["patient.updated"] = "patient.updated"
    payload: PatientRecord


class PatientDeleted(Event):
    type: Literal["patient.deleted"] = "patient.deleted"
    payload: PatientRef


class PatientRiskChanged(Event):
    """A patient's NEWS2 band rose; aggregate_version is the assessment's revision."""

    type: Literal["patient.risk_changed"] = "patient.risk_changed"
    payload: RiskChange


class MeasurementRecorded(Event):
    type: Literal["measurement.recorded"] = "measurement.recorded"
    payload: MeasurementRecord


class MeasurementDeleted(Event):
    type: Literal["measurement.deleted"] = "measurement.deleted"
    payload: MeasurementRef


AnyEvent = Annotated[
    PatientCreated | PatientUpdated | PatientDeleted | PatientRiskChanged | MeasurementRecorded | MeasurementDeleted,
    Field(discriminator="type"),
]
_any_event: TypeAdapter[AnyEvent] = TypeAdapter(AnyEvent)


def parse_event(body: bytes) -> Event:
    """The event in a message body; raises pydantic.ValidationError for anything else."""
    return _any_event.validate_json(body)
