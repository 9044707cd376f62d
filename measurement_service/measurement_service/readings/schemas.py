"""What the measurement API accepts and returns.

Units are fixed by the field name. Ranges (in painkiller_common.contracts, shared with the
consumers) are absolute plausibility limits (MIMIC-IV vital-sign cleaning): outside them a value is a device or entry
error (98.6 sent as `temperature_c`) and is refused; inside them even a critical value is stored.
Weight, height and glucose are not in that table; their limits here are the extremes ever
recorded in people, rounded outwards.
"""

import uuid
from collections.abc import Callable
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, JsonValue, StrictBool, model_validator

from painkiller_common.contracts import (
    VITALS,
    Consciousness,
    Diastolic,
    Glucose,
    HeartRate,
    Height,
    MeasuredAt,
    MeasurementRecord,
    RespiratoryRate,
    Source,
    SpO2,
    Systolic,
    Temperature,
    Weight,
)
from painkiller_common.fields import Timestamp, absent, present, rule_broken
from painkiller_common.http.pagination import Cursor, JsonLimit, Limit

READING_EXAMPLE: dict[str, JsonValue] = {
    "measured_at": "2026-11-26T08:30:00Z",
    "heart_rate_bpm": 88,
    "systolic_mmhg": 128,
    "diastolic_mmhg": 79,
}
MEASUREMENT_EXAMPLE: dict[str, JsonValue] = {
    "patient_id": "0b9f7a8c-2d3e-4f50-8172-8394a5b6c7d8",
    "heart_rate_bpm": 88,
    "spo2_percent": 97,
}
MAX_BATCH = 1000


def reading_rules(*examples: dict[str, Any]) -> Callable[[dict[str, Any]], None]:
    """The rules across a reading's fields that JSON Schema can state (`Reading` checks them)."""

    def add(schema: dict[str, Any]) -> None:
        schema["not"] = absent(*VITALS)  # at least one vital, not null
        # Both pressures or neither (null counts as not sent).
        schema["if"] = present(schema, "systolic_mmhg")
        schema["then"] = present(schema, "diastolic_mmhg")
        schema["else"] = absent("diastolic_mmhg")
        schema["examples"] = list(examples)

    return add


class Reading(BaseModel):
    """One set of vital signs taken at one moment: at least one vital; systolic and diastolic
    together, diastolic below systolic (a rule JSON Schema cannot state)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra=reading_rules(
            READING_EXAMPLE, {"temperature_c": 38.4, "spo2_percent": 94, "on_oxygen": False}
        ),
    )

    measured_at: MeasuredAt | None = Field(default=None, description="RFC 3339 with offset; default: time received.")
    temperature_c: Temperature | None = None
    heart_rate_bpm: HeartRate | None = None
    respiratory_rate_bpm: RespiratoryRate | None = None
    spo2_percent: SpO2 | None = None
    systolic_mmhg: Systolic | None = None
    diastolic_mmhg: Diastolic | None = None
    weight_kg: Weight | None = None
    height_cm: Height | None = None
    glucose_mg_dl: Glucose | None = None
    # Strict: pydantic would read 0, 1, "yes" or "off" as a boolean; the document says true or false.
    on_oxygen: StrictBool | None = Field(default=None, description="Supplemental oxygen (NEWS2 'air or oxygen').")
    consciousness: Consciousness | None = Field(default=None, description="ACVPU level.")
    source: Source | None = Field(default=None, description="Device id, or `manual`.")

    @model_validator(mode="after")
    def _rules_across_fields(self) -> Self:
        if all(getattr(self, vital) is None for vital in VITALS):
            raise rule_broken("at least one vital sign is required: " + ", ".join(VITALS))
        systolic, diastolic = self.systolic_mmhg, self.diastolic_mmhg
        if (systolic is None) != (diastolic is None):
            missing = "diastolic_mmhg" if diastolic is None else "systolic_mmhg"
            raise rule_broken("systolic_mmhg and diastolic_mmhg must be sent together", field=missing)
        if systolic is not None and diastolic is not None and diastolic >= systolic:
            raise rule_broken("must be below systolic_mmhg", field="diastolic_mmhg")
        return self


class MeasurementCreate(Reading):
    """A reading for the patient named in the body (`POST /api/v1/measures`)."""

    model_config = ConfigDict(json_schema_extra=reading_rules(MEASUREMENT_EXAMPLE))

    patient_id: uuid.UUID


MeasurementOut = MeasurementRecord


class PatientMeasurementFilter(BaseModel):
    """Filters for one patient's readings, newest `measured_at` first."""

    model_config = ConfigDict(extra="forbid")

    since: Timestamp | None = Field(default=None, description="Only readings measured at or after this.")
    until: Timestamp | None = Field(default=None, description="Only readings measured before this.")
    limit: Limit | None = None
    cursor: Cursor | None = None


class MeasurementFilter(PatientMeasurementFilter):
    patient_id: uuid.UUID | None = None


class MeasurementSearch(MeasurementFilter):
    """The body of `POST /api/v1/measures/list`: the filters of `GET /api/v1/measures`."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"patient_id": MEASUREMENT_EXAMPLE["patient_id"], "since": "2026-11-26T00:00:00Z"}]
        }
    )

    limit: JsonLimit | None = None


BATCH_LIMITS = Field(min_length=1, max_length=MAX_BATCH)


class BatchIn(BaseModel):
    """Up to 1,000 readings of the patient in the path."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"readings": [READING_EXAMPLE]}]})

    readings: list[Reading] = BATCH_LIMITS


class MeasurementBatchIn(BaseModel):
    """Up to 1,000 readings, each naming its patient."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"readings": [MEASUREMENT_EXAMPLE]}]})

    readings: list[MeasurementCreate] = BATCH_LIMITS


class BatchItem(BaseModel):
    index: int
    status: Literal["stored", "duplicate"] = Field(
        description="duplicate: the same patient, measured_at and source is already stored, and is not stored again."
    )
    id: uuid.UUID | None = Field(default=None, description="The stored reading's id (null for a duplicate).")


class BatchOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "stored": 1,
                    "duplicates": 1,
                    "results": [
                        {"index": 0, "status": "stored", "id": "6a1f2e3d-4c5b-4a69-8877-665544332211"},
                        {"index": 1, "status": "duplicate"},
                    ],
                }
            ]
        }
    )

    stored: int
    duplicates: int
    results: list[BatchItem]
