"""What the measurement API accepts and returns.

Units are fixed by the field name. Ranges (in painkiller_common.contracts, shared with the
consumers) are absolute plausibility limits (MIMIC-IV vital-sign cleaning): outside them a value is a device or entry
error (98.6 sent as `temperature_c`) and is refused; inside them even a critical value is stored.
Weight, height and glucose are not in that table; their limits here are the extremes ever
recorded in people, rounded outwards.
"""

import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from painkiller_common.contracts import (
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
from painkiller_common.fields import Timestamp
from painkiller_common.pagination import Cursor, Limit
from painkiller_common.problems import FieldError


class Reading(BaseModel):
    """One set of vital signs taken at one moment; at least one vital is required."""

    model_config = ConfigDict(extra="forbid")

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
    on_oxygen: bool | None = Field(default=None, description="Supplemental oxygen (NEWS2 'air or oxygen').")
    consciousness: Consciousness | None = Field(default=None, description="ACVPU level.")
    source: Source | None = Field(default=None, description="Device id, or `manual`.")


class MeasurementCreate(Reading):
    """A reading for the patient named in the body (`POST /api/v1/measures`)."""

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


MAX_BATCH = 1000


class BatchIn(BaseModel):
    """Up to 1,000 readings, each validated on its own: the valid ones are stored, the others
    are reported by index. Each item is a reading as for the single POST."""

    model_config = ConfigDict(extra="forbid")

    readings: list[dict[str, Any]] = Field(min_length=1, max_length=MAX_BATCH)


class BatchItem(BaseModel):
    index: int
    status: Literal["stored", "duplicate", "rejected"] = Field(
        description="duplicate: the same patient, measured_at and source is already stored."
    )
    id: uuid.UUID | None = Field(default=None, description="The stored reading's id (null when rejected).")
    errors: list[FieldError] | None = None


class BatchOut(BaseModel):
    stored: int
    duplicates: int
    rejected: int
    results: list[BatchItem]
