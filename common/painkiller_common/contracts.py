"""The resources as the APIs return them, and the events that carry them between services.

Defined once here and imported by producer and consumer alike, so the two cannot drift apart.
Each event is versioned (`version`, the schema version) and ordered per aggregate
(`aggregate_version`): a consumer ignores an event older than what it already applied.
"""

import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, TypeAdapter

from painkiller_common.fields import Integer, Number, Text, Timestamp
from painkiller_common.vital_signs import SIGNS

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


def _vital(field: str) -> tuple[Number, Any]:
    """A vital's range and description, from its row in vital_signs.SIGNS."""
    sign = SIGNS[field]
    limits = (Integer if sign.type is int else Number)(sign.low, sign.high)
    return limits, Field(description=sign.description)


# The API refuses a reading outside a vital's range and a consumer dead-letters an event carrying
# one, so a forged or broken event can never put it on a patient (vital_signs.py says why).
Temperature = Annotated[float, *_vital("temperature_c")]
HeartRate = Annotated[int, *_vital("heart_rate_bpm")]
RespiratoryRate = Annotated[int, *_vital("respiratory_rate_bpm")]
SpO2 = Annotated[int, *_vital("spo2_percent")]
Systolic = Annotated[int, *_vital("systolic_mmhg")]
Diastolic = Annotated[int, *_vital("diastolic_mmhg")]
Weight = Annotated[float, *_vital("weight_kg")]
Height = Annotated[float, *_vital("height_cm")]
Glucose = Annotated[float, *_vital("glucose_mg_dl")]
Source = Annotated[str, Text(100)]

# Each numeric vital's range: the API's schemas, the consumers' validation and the databases'
# CHECK constraints (tables.vital_range_checks) all refuse what lies outside it.
VITAL_RANGES: dict[str, tuple[float, float]] = {field: (sign.low, sign.high) for field, sign in SIGNS.items()}
MAX_CLOCK_SKEW = timedelta(minutes=5)


def _not_in_future(value: datetime) -> datetime:
    if value > datetime.now(UTC) + MAX_CLOCK_SKEW:
        raise ValueError("must not be more than 5 minutes in the future")
    return value


# A reading dated ahead would stay "latest" and hide newer ones: never accepted, from any side.
MeasuredAt = Annotated[Timestamp, AfterValidator(_not_in_future)]


class Location(BaseModel):
    """Where a patient lies: ward, room and bed (HL7 v2 PV1-3: point of care, room, bed)."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"ward": "4B", "room": "12", "bed": "2"}]}
    )

    ward: Annotated[str, Text(50)]
    room: Annotated[str, Text(50)] | None = None
    bed: Annotated[str, Text(50)] | None = None


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
    location: Location | None = Field(default=None, description="Ward, room and bed; null when not admitted.")
    discharged_at: datetime | None = Field(
        default=None, description="Set by a discharge (HL7 ADT^A03), cleared by the next admission."
    )
    created_at: datetime
    updated_at: datetime


class MeasurementRecord(BaseModel):
    """A reading as `GET /api/v1/measures/{id}` returns it."""

    model_config = ConfigDict(
        from_attributes=True,
        json_schema_extra={
            "examples": [
                {
                    "id": "6a1f2e3d-4c5b-4a69-8877-665544332211", "patient_id": "0b9f7a8c-2d3e-4f50-8172-8394a5b6c7d8",
                    "measured_at": "2026-11-26T08:30:00Z", "recorded_at": "2026-11-26T08:30:01.204Z",
                    "temperature_c": 38.4, "heart_rate_bpm": 96, "respiratory_rate_bpm": 22, "spo2_percent": 95,
                    "systolic_mmhg": 128, "diastolic_mmhg": 79, "weight_kg": 61.5, "height_cm": 167.0,
                    "glucose_mg_dl": 104.0, "on_oxygen": False, "consciousness": "alert", "source": "monitor-7",
                }
            ]
        },
    )  # fmt: skip

    id: uuid.UUID
    patient_id: uuid.UUID
    measured_at: MeasuredAt
    recorded_at: Timestamp = Field(description="When the service stored the reading.")
    temperature_c: Temperature | None
    heart_rate_bpm: HeartRate | None
    respiratory_rate_bpm: RespiratoryRate | None
    spo2_percent: SpO2 | None
    systolic_mmhg: Systolic | None
    diastolic_mmhg: Diastolic | None
    weight_kg: Weight | None
    height_cm: Height | None
    glucose_mg_dl: Glucose | None
    on_oxygen: bool | None
    consciousness: Consciousness | None
    source: Source | None


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
    type: str  # each event class narrows it to its own name, a Literal


# Patient events carry the minimum necessary: the id (the aggregate version orders them). No
# name, MRN, birth date or condition travels over the broker; a consumer that needs them asks the
# patient API with a token of its own.
class PatientCreated(Event):
    type: Literal["patient.created"] = "patient.created"
    payload: PatientRef


class PatientUpdated(Event):
    type: Literal["patient.updated"] = "patient.updated"
    payload: PatientRef


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
