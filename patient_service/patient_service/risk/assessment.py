"""Keeping each patient's risk assessment current: recompute from the stored readings, store,
and publish `patient.risk_changed` when the band rises."""

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from painkiller_common.contracts import PatientRiskChanged, RiskChange
from painkiller_common.db.outbox import UnitOfWork
from painkiller_common.db.statements import Statement, rows_json
from patient_service.config import Settings
from patient_service.models import Patient, RiskAssessmentRow, VitalReading
from patient_service.risk.latest_vitals import merge_reading
from patient_service.risk.scores import BAND_RANK, READING_VALUES, Reading, RiskAssessment, assess, spo2_scale_of

# At most this many systolic readings go into the BP category and variability.
SERIES_LIMIT = 100
READING_FIELDS = set(READING_VALUES)


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


def _with_series(values: dict[str, dict[str, Any]], series: Iterable[Mapping[Any, Any]]) -> list[Reading]:
    """`values` and the blood-pressure series, put back together by measurement id."""
    for row in series:
        reading = values.setdefault(str(row["measurement_id"]), {"measured_at": row["measured_at"]})
        reading.update(systolic_mmhg=row["systolic_mmhg"], diastolic_mmhg=row["diastolic_mmhg"])
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
    return _with_series(values, series.mappings())


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
# Each statement takes the batch's patients as one JSON document (db/statements.py, `rows_json`).
_LOCK = Statement.compile(
    "SELECT p.id, p.latest_vitals, p.spo2_scale, r.revision, r.band FROM patients p"
    " LEFT JOIN risk_assessments r ON r.patient_id = p.id"
    " WHERE p.id IN (SELECT CAST(value AS uuid) FROM json_array_elements_text(:ids::json))"
    " ORDER BY p.id FOR UPDATE OF p"
)
_SERIES = Statement.compile(
    "SELECT w.patient_id, v.measurement_id, v.measured_at, v.systolic_mmhg, v.diastolic_mmhg"
    " FROM json_to_recordset(:windows::json) AS w(patient_id uuid, since timestamptz)"
    " CROSS JOIN LATERAL (SELECT measurement_id, measured_at, systolic_mmhg, diastolic_mmhg FROM vital_readings"
    "  WHERE patient_id = w.patient_id AND NOT deleted AND systolic_mmhg IS NOT NULL AND measured_at >= w.since"
    f"  ORDER BY measured_at DESC, measurement_id DESC LIMIT {SERIES_LIMIT}) AS v"
)
_SET_VITALS = Statement.compile(
    "UPDATE patients p SET latest_vitals = u.vitals"
    " FROM json_to_recordset(:rows::json) AS u(id uuid, vitals jsonb) WHERE p.id = u.id"
)
_RISK_COLUMNS = ["revision", "news2_total", "band", "band_rank", "bp_category", "based_on", "assessment"]
_SET_RISK = Statement.compile(
    f"INSERT INTO risk_assessments (patient_id, {', '.join(_RISK_COLUMNS)})"
    f" SELECT patient_id, {', '.join(_RISK_COLUMNS)}"
    " FROM json_populate_recordset(NULL::risk_assessments, :rows::json)"
    " ON CONFLICT (patient_id) DO UPDATE SET " + ", ".join(f"{c} = excluded.{c}" for c in _RISK_COLUMNS)
)


def reassess_many(
    session: UnitOfWork, patient_ids: list[uuid.UUID], new_readings: dict[uuid.UUID, list[Any]], settings: Settings
) -> None:
    """Fold each patient's new readings into `latest_vitals` and reassess them all: a fixed
    number of statements whatever the number of patients (each patient's row locked, in id order)."""
    windows = Windows.of(settings)
    patients = _LOCK.all_sync(session, {"ids": rows_json(patient_ids)})
    if not patients:
        return
    latest = {p["id"]: _merged(p["latest_vitals"], new_readings.get(p["id"], [])) for p in patients}
    values = {pid: _latest(vitals) for pid, vitals in latest.items()}
    since = {pid: _series_since(v, windows.variability) for pid, v in values.items()}
    windows_json = rows_json([{"patient_id": pid, "since": at} for pid, at in since.items() if at is not None])
    series: dict[uuid.UUID, list[Any]] = {}
    for row in _SERIES.all_sync(session, {"windows": windows_json}):
        series.setdefault(row["patient_id"], []).append(row)
    changed = [{"id": p["id"], "vitals": latest[p["id"]]} for p in patients if latest[p["id"]] != p["latest_vitals"]]
    if changed:
        _SET_VITALS.run_sync(session, {"rows": rows_json(changed)})
    risk, events = [], []
    for patient in patients:
        pid = patient["id"]
        result = windows.assess(_with_series(values[pid], series.get(pid, [])), patient["spo2_scale"])
        columns = _columns(result, (patient["revision"] or 0) + 1)
        risk.append({"patient_id": pid, **columns})
        events += _changes(pid, patient["band"], columns["revision"], result)
    _SET_RISK.run_sync(session, {"rows": rows_json(risk)})
    session.record(*events)


def _merged(latest_vitals: dict[str, Any], readings: list[Any]) -> dict[str, Any]:
    for reading in readings:
        latest_vitals = merge_reading(latest_vitals, reading)
    return latest_vitals
