"""Keeping each patient's risk assessment current: recompute from the stored readings, store,
and publish `patient.risk_changed` when the band rises."""

from datetime import timedelta

from sqlalchemy import func, select, union
from sqlalchemy.orm import Session

from painkiller_common.contracts import PatientRiskChanged, RiskChange
from painkiller_common.outbox import emit
from patient_service.config import Settings
from patient_service.models import EVENT_TABLES, Patient, RiskAssessmentRow, VitalReading
from patient_service.risk import BAND_RANK, Reading, RiskAssessment, assess

# Bounds on what one assessment reads, however many readings a patient has.
SERIES_LIMIT = 100  # systolic readings for the BP category and variability


def _readings(session: Session, patient: Patient, window: timedelta, variability_window: timedelta) -> list[Reading]:
    """What the assessment needs, and no more: the newest reading with each NEWS2 parameter in
    the window, and the last SERIES_LIMIT systolic readings in the variability window. One query."""
    live = (VitalReading.patient_id == patient.id) & ~VitalReading.deleted
    newest = session.scalar(select(func.max(VitalReading.measured_at)).where(live))
    if newest is None:
        return []
    order = (VitalReading.measured_at.desc(), VitalReading.measurement_id.desc())
    latest_per_parameter = [
        select(VitalReading).where(live, column.is_not(None), VitalReading.measured_at >= newest - window)
        .order_by(*order).limit(1)
        for column in NEWS2_COLUMNS
    ]  # fmt: skip
    series = (
        select(VitalReading)
        .where(live, VitalReading.systolic_mmhg.is_not(None), VitalReading.measured_at >= newest - variability_window)
        .order_by(*order)
        .limit(SERIES_LIMIT)
    )
    parts = [part.subquery().select() for part in [*latest_per_parameter, series]]
    rows = session.execute(union(*parts)).all()
    return [
        Reading(
            measured_at=row.measured_at,
            id=str(row.measurement_id),
            respiratory_rate_bpm=row.respiratory_rate_bpm,
            spo2_percent=row.spo2_percent,
            on_oxygen=row.on_oxygen,
            systolic_mmhg=row.systolic_mmhg,
            diastolic_mmhg=row.diastolic_mmhg,
            heart_rate_bpm=row.heart_rate_bpm,
            consciousness=row.consciousness,
            temperature_c=row.temperature_c,
        )
        for row in rows
    ]


NEWS2_COLUMNS = (
    VitalReading.respiratory_rate_bpm,
    VitalReading.spo2_percent,
    VitalReading.on_oxygen,
    VitalReading.systolic_mmhg,
    VitalReading.heart_rate_bpm,
    VitalReading.consciousness,
    VitalReading.temperature_c,
)


def reassess(session: Session, patient: Patient, settings: Settings) -> RiskAssessment:
    """Recompute and store the patient's assessment (the caller holds the patient's row lock)."""
    window = timedelta(hours=settings.risk_window_hours)
    variability_window = timedelta(days=settings.bp_variability_window_days)
    readings = _readings(session, patient, window, variability_window)
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
