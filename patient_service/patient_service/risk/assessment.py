"""Keeping each patient's risk assessment current: recompute from the stored readings, store,
and publish `patient.risk_changed` when the band rises."""

import json
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from painkiller_common.contracts import PatientRiskChanged, RiskChange
from painkiller_common.db.outbox import UnitOfWork
from patient_service.config import Settings
from patient_service.models import Patient, RiskAssessmentRow, VitalReading
from patient_service.risk.latest_vitals import merge_reading
from patient_service.risk.scores import BAND_RANK, Reading, RiskAssessment, assess, spo2_scale_of

# At most this many systolic readings go into the BP category and variability.
SERIES_LIMIT = 100
READING_FIELDS = {f.name for f in fields(Reading)} - {"measured_at", "id"}


def _latest(latest_vitals: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The readings behind `latest_vitals`, by measurement id: the newest value of every vital is
    already there (kept from the same events), so NEWS2 needs no query."""
    values: dict[str, dict[str, Any]] = {}
    for field, entry in latest_vitals.items():
        if field in READING_FIELDS:
            reading = values.setdefault(
                entry["measurement_id"], {"measured_at": datetime.fromisoformat(entry["measured_at"])}
            )
            reading[field] = entry["value"]
    return values


def _with_series(values: dict[str, dict[str, Any]], series: Iterable[Any]) -> list[Reading]:
    """`values` and the blood-pressure series, put back together by measurement id."""
    for row in series:
        reading = values.setdefault(str(row.measurement_id), {"measured_at": row.measured_at})
        reading.update(systolic_mmhg=row.systolic_mmhg, diastolic_mmhg=row.diastolic_mmhg)
    return [Reading(id=measurement_id, **reading) for measurement_id, reading in values.items()]


def _series_since(values: dict[str, dict[str, Any]], variability_window: timedelta) -> datetime | None:
    return max(reading["measured_at"] for reading in values.values()) - variability_window if values else None


def _readings(session: Session, patient: Patient, variability_window: timedelta) -> list[Reading]:
    """What the assessment needs, and no more: the latest vitals, and the blood-pressure series,
    one query bounded by SERIES_LIMIT."""
    values = _latest(patient.latest_vitals)
    since = _series_since(values, variability_window)
    if since is None:
        return []
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
            VitalReading.measured_at >= since,
        )
        .order_by(VitalReading.measured_at.desc(), VitalReading.measurement_id.desc())
        .limit(SERIES_LIMIT)
    )
    return _with_series(values, series)


def reassess(session: UnitOfWork, patient: Patient, settings: Settings) -> RiskAssessment:
    """Recompute and store the patient's assessment (the caller holds the patient's row lock)."""
    windows = Windows.of(settings)
    readings = _readings(session, patient, windows.variability)
    result = windows.assess(readings, patient.spo2_scale)
    previous = patient.risk
    row = previous or RiskAssessmentRow(patient_id=patient.id, revision=0)
    previous_band = previous.band if previous else None
    for column, value in _columns(result, row.revision + 1).items():
        setattr(row, column, value)
    if previous is None:
        patient.risk = row
    session.record(*_changes(patient.id, previous_band, row.revision, result))
    return result


@dataclass(frozen=True)
class Windows:
    """The settings' time windows: NEWS2 and BP category, and BP variability."""

    news2: timedelta
    variability: timedelta

    @classmethod
    def of(cls, settings: Settings) -> "Windows":
        return cls(timedelta(hours=settings.risk_window_hours), timedelta(days=settings.bp_variability_window_days))

    def assess(self, readings: list[Reading], spo2_scale: int) -> RiskAssessment:
        scale = spo2_scale_of(spo2_scale)
        return assess(readings, spo2_scale=scale, window=self.news2, variability_window=self.variability)


def _columns(result: RiskAssessment, revision: int) -> dict[str, Any]:
    """The risk_assessments columns for `result`."""
    return {
        "revision": revision,
        "news2_total": result.news2.total,
        "band": result.news2.band,
        "band_rank": BAND_RANK[result.news2.band] if result.news2.band else None,
        "bp_category": result.blood_pressure.category,
        "based_on": result.based_on,
        "assessment": result.model_dump(mode="json"),
    }


def _changes(
    patient_id: uuid.UUID, previous_band: str | None, revision: int, result: RiskAssessment
) -> list[PatientRiskChanged]:
    """`patient.risk_changed` if the band rose, else nothing."""
    band, total, based_on = result.news2.band, result.news2.total, result.based_on
    # A band comes with its total and the reading it is based on; without one, nothing rose.
    if band is None or total is None or based_on is None or not _rose(previous_band, band):
        return []
    change = RiskChange(
        patient_id=patient_id, previous_band=previous_band, band=band, news2_total=total, based_on=based_on
    )
    return [PatientRiskChanged(aggregate_id=patient_id, aggregate_version=revision, payload=change)]


def _rose(previous: str | None, current: str | None) -> bool:
    # No assessment yet counts as "low": a first reading that scores low is no news.
    return current is not None and BAND_RANK[current] > BAND_RANK[previous or "low"]


# --- many patients at once: the consumer, after a batch of measurement events ----------------
_LOCK = text(
    "SELECT p.id, p.latest_vitals, p.spo2_scale, r.revision, r.band FROM patients p"
    " LEFT JOIN risk_assessments r ON r.patient_id = p.id"
    " WHERE p.id = ANY(CAST(:ids AS uuid[])) ORDER BY p.id FOR UPDATE OF p"
)
_SERIES = text(
    "SELECT w.patient_id, v.measurement_id, v.measured_at, v.systolic_mmhg, v.diastolic_mmhg"
    " FROM unnest(CAST(:ids AS uuid[]), CAST(:since AS timestamptz[])) AS w(patient_id, since)"
    " CROSS JOIN LATERAL (SELECT measurement_id, measured_at, systolic_mmhg, diastolic_mmhg FROM vital_readings"
    "  WHERE patient_id = w.patient_id AND NOT deleted AND systolic_mmhg IS NOT NULL AND measured_at >= w.since"
    f"  ORDER BY measured_at DESC, measurement_id DESC LIMIT {SERIES_LIMIT}) AS v"
)
_SET_VITALS = text(
    "UPDATE patients p SET latest_vitals = u.vitals"
    " FROM unnest(CAST(:ids AS uuid[]), CAST(:vitals AS jsonb[])) AS u(id, vitals) WHERE p.id = u.id"
)
_RISK_COLUMNS = ["revision", "news2_total", "band", "band_rank", "bp_category", "based_on", "assessment"]
_RISK_TYPES = ["int", "int2", "text", "int2", "text", "timestamptz", "jsonb"]
_SET_RISK = text(
    f"INSERT INTO risk_assessments (patient_id, {', '.join(_RISK_COLUMNS)})"
    " SELECT * FROM unnest(CAST(:patient_id AS uuid[]), "
    + ", ".join(f"CAST(:{c} AS {t}[])" for c, t in zip(_RISK_COLUMNS, _RISK_TYPES, strict=True))
    + ") ON CONFLICT (patient_id) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in _RISK_COLUMNS)
)


def reassess_many(
    session: UnitOfWork, patient_ids: list[uuid.UUID], new_readings: dict[uuid.UUID, list[Any]], settings: Settings
) -> None:
    """Fold each patient's new readings into `latest_vitals` and reassess them all: a fixed
    number of statements whatever the number of patients (each patient's row locked, in id order)."""
    windows = Windows.of(settings)
    patients = session.execute(_LOCK, {"ids": patient_ids}).all()
    if not patients:
        return
    latest = {p.id: _merged(p.latest_vitals, new_readings.get(p.id, [])) for p in patients}
    values = {p.id: _latest(latest[p.id]) for p in patients}
    since = {pid: _series_since(v, windows.variability) for pid, v in values.items()}
    wanted = [pid for pid, at in since.items() if at is not None]
    series: dict[uuid.UUID, list[Any]] = {}
    for row in session.execute(_SERIES, {"ids": wanted, "since": [since[pid] for pid in wanted]}):
        series.setdefault(row.patient_id, []).append(row)
    changed = [p.id for p in patients if latest[p.id] != p.latest_vitals]
    if changed:
        vitals = [json.dumps(latest[pid]) for pid in changed]
        session.execute(_SET_VITALS, {"ids": changed, "vitals": vitals})
    risk: dict[str, list[Any]] = {column: [] for column in ["patient_id", *_RISK_COLUMNS]}
    events: list[PatientRiskChanged] = []
    for patient in patients:
        result = windows.assess(_with_series(values[patient.id], series.get(patient.id, [])), patient.spo2_scale)
        columns = _columns(result, (patient.revision or 0) + 1)
        columns["assessment"] = json.dumps(columns["assessment"])
        for column, value in {"patient_id": patient.id, **columns}.items():
            risk[column].append(value)
        events += _changes(patient.id, patient.band, columns["revision"], result)
    session.execute(_SET_RISK, risk)
    session.record(*events)


def _merged(latest_vitals: dict[str, Any], readings: list[Any]) -> dict[str, Any]:
    for reading in readings:
        latest_vitals = merge_reading(latest_vitals, reading)
    return latest_vitals
