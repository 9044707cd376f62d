"""Keeping each patient's risk assessment current: recompute from the stored readings, store,
and publish `patient.risk_changed` when the band rises."""

from dataclasses import fields
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from painkiller_common.contracts import PatientRiskChanged, RiskChange
from painkiller_common.outbox import emit
from patient_service.config import Settings
from patient_service.models import EVENT_TABLES, Patient, RiskAssessmentRow, VitalReading
from patient_service.risk import BAND_RANK, Reading, RiskAssessment, assess

# At most this many systolic readings go into the BP category and variability.
SERIES_LIMIT = 100
READING_FIELDS = {f.name for f in fields(Reading)} - {"measured_at", "id"}


def _readings(session: Session, patient: Patient, variability_window: timedelta) -> list[Reading]:
    """What the assessment needs, and no more.

    The newest value of every vital is already in `latest_vitals` (kept from the same events),
    so NEWS2 needs no query; the blood-pressure series is the one query, bounded by SERIES_LIMIT.
    Values of one reading are put back together by measurement id.
    """
    values: dict[str, dict[str, Any]] = {}
    for field, entry in patient.latest_vitals.items():
        if field in READING_FIELDS:
            reading = values.setdefault(
                entry["measurement_id"], {"measured_at": datetime.fromisoformat(entry["measured_at"])}
            )
            reading[field] = entry["value"]
    if not values:
        return []
    newest = max(reading["measured_at"] for reading in values.values())
    series = session.execute(
        select(
            VitalReading.measurement_id,
            VitalReading.measured_at,
            VitalReading.systolic_mmhg,
            VitalReading.diastolic_mmhg,
        )
        .where(
            VitalReading.patient_id == patient.id,
            ~VitalReading.deleted,
            VitalReading.systolic_mmhg.is_not(None),
            VitalReading.measured_at >= newest - variability_window,
        )
        .order_by(VitalReading.measured_at.desc(), VitalReading.measurement_id.desc())
        .limit(SERIES_LIMIT)
    )
    for row in series:
        reading = values.setdefault(str(row.measurement_id), {"measured_at": row.measured_at})
        reading.update(systolic_mmhg=row.systolic_mmhg, diastolic_mmhg=row.diastolic_mmhg)
    return [Reading(id=measurement_id, **reading) for measurement_id, reading in values.items()]


def reassess(session: Session, patient: Patient, settings: Settings) -> RiskAssessment:
    """Recompute and store the patient's assessment (the caller holds the patient's row lock)."""
    window = timedelta(hours=settings.risk_window_hours)
    variability_window = timedelta(days=settings.bp_variability_window_days)
    readings = _readings(session, patient, variability_window)
    result = assess(readings, spo2_scale=patient.spo2_scale, window=window, variability_window=variability_window)  # type: ignore[arg-type]
    previous = patient.risk
    row = previous or RiskAssessmentRow(patient_id=patient.id, revision=0)
    previous_band = previous.band if previous else None
    row.revision += 1
    row.news2_total = result.news2.total
    row.band = result.news2.band
    row.band_rank = BAND_RANK[result.news2.band] if result.news2.band else None
    row.bp_category = result.blood_pressure.category
    row.based_on = result.based_on
    row.assessment = result.model_dump(mode="json")
    if previous is None:
        patient.risk = row
    if _rose(previous_band, result.news2.band):
        change = RiskChange(
            patient_id=patient.id,
            previous_band=previous_band,
            band=result.news2.band,  # type: ignore[arg-type]
            news2_total=result.news2.total,  # type: ignore[arg-type]
            based_on=result.based_on,  # type: ignore[arg-type]
        )
        emit(
            session,
            EVENT_TABLES.outbox,
            [PatientRiskChanged(aggregate_id=patient.id, aggregate_version=row.revision, payload=change)],
        )
    return result


def _rose(previous: str | None, current: str | None) -> bool:
    # No assessment yet counts as "low": a first reading that scores low is no news.
    return current is not None and BAND_RANK[current] > BAND_RANK[previous or "low"]
