"""Patient use cases as plain functions; the caller's session owns the transaction. Reading a
patient and a page of patients, the hot reads, are async: one statement each, audit included
(db/pg.py, doc/performance.md)."""

import functools
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import BigInteger, literal, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from painkiller_common.contracts import PatientCreated, PatientDeleted, PatientRecord, PatientRef, PatientUpdated
from painkiller_common.db import pg
from painkiller_common.db.idempotency import erase_answers
from painkiller_common.db.outbox import UnitOfWork
from painkiller_common.db.pg import Pool
from painkiller_common.db.statements import Statement
from painkiller_common.errors import Conflict, NotFound
from painkiller_common.http.pagination import Page, clamp_limit, decode_cursor, decode_int_cursor, page_of
from painkiller_common.security import audit
from painkiller_common.security.access import Access
from patient_service.config import Settings
from patient_service.models import EVENT_TABLES, LOCK_PATIENT, Patient, RiskAssessmentRow, VitalReading
from patient_service.patients.schemas import (
    AtRiskFilter,
    AtRiskPatient,
    ObservationChart,
    PatientCreate,
    PatientFilter,
    PatientOut,
    PatientUpdate,
    RiskAssessmentOut,
    today,
    years_between,
)
from patient_service.risk import chart
from patient_service.risk.assessment import reassess
from patient_service.risk.observations import LatestSet, Schedule, next_observation
from patient_service.risk.scores import BAND_RANK, READING_VALUES, Reading, assess, spo2_scale_of

# At most this many readings on a chart, the newest (a reading every 15 minutes for a week is 672).
CHART_LIMIT = 2000

RECORD_FIELDS = [name for name in PatientRecord.model_fields if name != "age"]


def _out(fields: Mapping[str, Any], latest_vitals: dict[str, Any], risk: Mapping[str, Any] | None,
         schedule: Schedule) -> PatientOut:  # fmt: skip
    """The API's form of a patient, from its columns (an ORM object's or a row's); `risk` with
    `complete`, whether its NEWS2 is of a complete set."""
    born = fields["birth_date"]
    age = years_between(born, today()) if born else fields["age"]
    record = {name: fields[name] for name in RECORD_FIELDS}
    due = next_observation(latest_set(fields, risk), schedule, datetime.now(UTC))
    summary = risk and {name: risk[name] for name in ("news2_total", "band", "sub_scores", "bp_category", "based_on")}
    return PatientOut.model_validate({**record, "age": age, "latest_vitals": latest_vitals, "risk": summary,
                                      "next_observation_due_at": due.at, "overdue": due.overdue})  # fmt: skip


def latest_set(fields: Mapping[str, Any], risk: Mapping[str, Any] | None) -> LatestSet:
    """What the observation schedule needs of a patient's columns and risk summary."""
    location = fields["location"] or {}
    return LatestSet(
        news2_total=risk["news2_total"] if risk else None,
        band=risk["band"] if risk else None,
        complete=bool(risk and risk["complete"]),
        based_on=risk["based_on"] if risk else None,
        registered_at=fields["created_at"],
        discharged=fields["discharged_at"] is not None,
        ward=location.get("ward"),
    )


def to_ref(patient: Patient) -> PatientRef:
    """The patient as events carry it: the id alone (minimum necessary, doc/security.md)."""
    return PatientRef(id=patient.id)


def to_out(patient: Patient, schedule: Schedule) -> PatientOut:
    """The patient as the API shows it: own fields, latest vitals, risk summary, when the next
    observations are due."""
    fields = {name: getattr(patient, name) for name in [*RECORD_FIELDS, "age"]}
    return _out(fields, patient.latest_vitals, _summary(patient.risk), schedule)


def _summary(risk: RiskAssessmentRow | None) -> dict[str, Any] | None:
    if risk is None:
        return None
    news2 = risk.assessment["news2"]
    return {"news2_total": risk.news2_total, "band": risk.band, "bp_category": risk.bp_category,
            "based_on": risk.based_on, "complete": news2["complete"], "sub_scores": news2["sub_scores"]}  # fmt: skip


# A patient's version and events change in these three functions only, for the API and the
# CSV import alike; the unit of work writes the events when it commits.


def add(session: UnitOfWork, data: PatientCreate, now: datetime) -> Patient:
    """A new patient at version 1, with its `patient.created`."""
    patient = Patient(id=uuid.uuid4(), created_at=now, updated_at=now, version=1, latest_vitals={}, **data.model_dump())
    session.add(patient)
    session.record(PatientCreated(aggregate_id=patient.id, aggregate_version=1, payload=to_ref(patient)))
    return patient


def change(session: UnitOfWork, patient: Patient, changes: dict[str, Any], now: datetime) -> bool:
    """Apply `changes`: the next version, with its `patient.updated`; False if nothing changes."""
    if all(getattr(patient, field) == value for field, value in changes.items()):
        return False
    for field, value in changes.items():
        setattr(patient, field, value)
    patient.version += 1
    patient.updated_at = now
    session.record(PatientUpdated(aggregate_id=patient.id, aggregate_version=patient.version, payload=to_ref(patient)))
    return True


def remove(session: UnitOfWork, patient: Patient) -> None:
    """Delete the patient, with the `patient.deleted` that erases their readings elsewhere."""
    session.record(
        PatientDeleted(aggregate_id=patient.id, aggregate_version=patient.version + 1, payload=to_ref(patient))
    )
    session.delete(patient)


def create_patient(*, session: UnitOfWork, data: PatientCreate) -> Patient:
    patient = add(session, data, datetime.now(UTC))
    _flush_unique(session, patient.mrn)
    return patient


# What a patient's answer needs: own fields, latest vitals and the risk summary (`_from_row`).
_ANSWER_COLUMNS = (
    f"{', '.join('p.' + name for name in RECORD_FIELDS)}, p.age, p.latest_vitals,"
    " r.news2_total, r.band, r.bp_category, r.based_on, r.patient_id IS NOT NULL AS assessed,"
    " coalesce((r.assessment -> 'news2' ->> 'complete')::boolean, false) AS complete,"
    " r.assessment -> 'news2' -> 'sub_scores' AS sub_scores"
    " FROM patients p LEFT JOIN risk_assessments r ON r.patient_id = p.id"
)
_READ = Statement.compile(
    f"WITH found AS (SELECT {_ANSWER_COLUMNS} WHERE p.id = :patient_id),"
    f" audited AS ({audit.insert_from('found', resource_id='found.id', patient_id='found.id')})"
    " SELECT * FROM found"
)


def _from_row(row: Mapping[str, Any], schedule: Schedule) -> PatientOut:
    return _out(row, row["latest_vitals"], row if row["assessed"] else None, schedule)


async def read_patient(*, pool: Pool, access: Access, patient_id: uuid.UUID, schedule: Schedule) -> PatientOut:
    """The patient, read and audited in one statement (one round trip: doc/performance.md)."""
    async with pg.connection(pool) as conn:
        row = await _READ.one(conn, {"patient_id": patient_id, **audit.shared_values(access.row(200))})
    if row is None:
        raise NotFound(f"Patient {patient_id} does not exist.")
    return _from_row(row, schedule)


@functools.cache
def _page(*, name: bool, mrn: bool, ward: bool, after: bool) -> Statement:
    """A page of patients with its audit rows, one statement compiled once per shape (which
    filters it has): one audit row per patient shown, one without a record for an empty page."""
    where = ["(p.first_name ILIKE :pattern OR p.last_name ILIKE :pattern)"] if name else []
    where += ["p.mrn = :mrn"] if mrn else []
    where += ["p.location ->> 'ward' = :ward"] if ward else []
    where += ["(p.created_at, p.id) > (:after_at, :after_id)"] if after else []
    filters = f" WHERE {' AND '.join(where)}" if where else ""
    touched = "(SELECT id FROM page UNION ALL SELECT NULL::uuid WHERE NOT EXISTS (SELECT 1 FROM page)) AS touched"
    return Statement.compile(
        f"WITH fetched AS (SELECT {_ANSWER_COLUMNS}{filters} ORDER BY p.created_at, p.id LIMIT :fetch),"
        " page AS (SELECT id FROM fetched ORDER BY created_at, id LIMIT :limit),"
        f" audited AS ({audit.insert_from(touched, resource_id='touched.id', patient_id='touched.id')})"
        " SELECT * FROM fetched ORDER BY created_at, id"
    )


async def list_patients(*, pool: Pool, access: Access, query: PatientFilter, schedule: Schedule) -> Page[PatientOut]:
    """Patients in creation order (a key that carries no patient data into URLs and logs), read
    and audited in one statement."""
    limit = clamp_limit(query.limit)
    after_at, after_id = decode_cursor(query.cursor) if query.cursor else (None, None)
    pattern = query.name and "%" + query.name.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    statement = _page(name=bool(query.name), mrn=bool(query.mrn), ward=bool(query.ward), after=query.cursor is not None)
    values = {"pattern": pattern, "mrn": query.mrn, "ward": query.ward, "after_at": after_at, "after_id": after_id}
    async with pg.connection(pool) as conn:
        rows = await statement.all(
            conn, {**values, "fetch": limit + 1, "limit": limit, **audit.shared_values(access.row(200))}
        )
    return page_of(rows, limit, key=lambda row: (row["created_at"], row["id"]),
                   out=lambda row: _from_row(row, schedule))  # fmt: skip


def get_patient(*, session: Session, patient_id: uuid.UUID, for_update: bool = False) -> Patient:
    patient = session.get(Patient, patient_id, with_for_update=LOCK_PATIENT if for_update else None)
    if patient is None:
        raise NotFound(f"Patient {patient_id} does not exist.")
    return patient


def update_patient(*, session: UnitOfWork, patient_id: uuid.UUID, data: PatientUpdate, settings: Settings) -> Patient:
    patient = get_patient(session=session, patient_id=patient_id, for_update=True)
    changes = data.model_dump(exclude_unset=True)
    _apply_age_rules(patient, changes)
    if changes.get("location") is not None:  # in a bed again: no longer discharged
        changes["discharged_at"] = None
    rescore = "spo2_scale" in changes and changes["spo2_scale"] != patient.spo2_scale
    if change(session, patient, changes, datetime.now(UTC)):
        if rescore:  # the SpO2 scale changes NEWS2 from the same readings
            reassess(session, patient, settings)
        _flush_unique(session, patient.mrn)
    return patient


def _apply_age_rules(patient: Patient, changes: dict[str, object]) -> None:
    """Age and birth date describe one fact: setting one replaces the other."""
    if changes.get("birth_date") is not None:
        changes["age"] = None
    elif "age" in changes:
        changes["birth_date"] = None
    elif "birth_date" in changes and patient.birth_date:  # cleared without an age: keep the age it gave
        changes["age"] = years_between(patient.birth_date, today())


def delete_patient(*, session: UnitOfWork, patient_id: uuid.UUID) -> None:
    """Delete the patient; `patient.deleted` makes the measurement service erase their readings."""
    patient = get_patient(session=session, patient_id=patient_id, for_update=True)
    remove(session, patient)
    erase_answers(session, EVENT_TABLES.idempotency_keys, patient.id)
    session.flush()


def get_risk(*, session: Session, patient_id: uuid.UUID, settings: Settings) -> RiskAssessmentOut:
    patient = get_patient(session=session, patient_id=patient_id)
    if patient.risk is not None:
        return RiskAssessmentOut(patient_id=patient.id, **patient.risk.assessment)
    # No reading yet: every parameter missing, nothing judged.
    window = timedelta(hours=settings.risk_window_hours)
    empty = assess([], spo2_scale=spo2_scale_of(patient.spo2_scale), window=window, variability_window=window)
    return RiskAssessmentOut(patient_id=patient.id, **empty.model_dump())


def get_chart(*, session: Session, patient_id: uuid.UUID, hours: int, settings: Settings) -> ObservationChart:
    """The patient's readings of the last `hours` (from now), laid out as the NEWS2 chart."""
    patient = get_patient(session=session, patient_id=patient_id)
    since = datetime.now(UTC) - timedelta(hours=hours)
    window = timedelta(hours=settings.risk_window_hours)
    stored = session.scalars(
        select(VitalReading)
        .where(VitalReading.patient_id == patient_id, ~VitalReading.deleted, VitalReading.measured_at >= since - window)
        .order_by(VitalReading.measured_at.desc(), VitalReading.measurement_id.desc())
        .limit(CHART_LIMIT)  # the newest, when there are more
    )
    readings = [_reading(row) for row in stored]
    scale = spo2_scale_of(patient.spo2_scale)
    return ObservationChart(patient_id=patient_id, spo2_scale=scale, since=since,
                            rows=chart.rows(readings, since=since, spo2_scale=scale, window=window))  # fmt: skip


def _reading(row: VitalReading) -> Reading:
    return Reading(
        id=str(row.measurement_id), **{name: getattr(row, name) for name in ("measured_at", *READING_VALUES)}
    )


def list_at_risk(*, session: Session, query: AtRiskFilter, schedule: Schedule) -> Page[AtRiskPatient]:
    """The ward view: patients at or above `min_band`, highest NEWS2 first."""
    limit = clamp_limit(query.limit)
    risk = RiskAssessmentRow
    stmt = (
        select(Patient, risk)
        .join(risk, risk.patient_id == Patient.id)
        .where(risk.band_rank >= BAND_RANK[query.min_band])
        .order_by(risk.news2_total.desc(), risk.patient_id)
        .limit(limit + 1)
    )
    if query.cursor:
        total, after = decode_int_cursor(query.cursor)
        # Compared as bigint: a cursor's number may be any the pattern allows, far above a smallint.
        at = literal(total, BigInteger)
        stmt = stmt.where((risk.news2_total < at) | ((risk.news2_total == at) & (risk.patient_id > after)))
    rows = session.execute(stmt).all()
    return page_of(rows, limit, key=_at_risk_key, out=lambda row: _at_risk(row, schedule))


def _at_risk_key(row: tuple[Patient, RiskAssessmentRow]) -> tuple[int, uuid.UUID]:
    total = row[1].news2_total
    assert total is not None  # a row with a band (the filter) always has its score
    return total, row[1].patient_id


def _at_risk(row: tuple[Patient, RiskAssessmentRow], schedule: Schedule) -> AtRiskPatient:
    """Validated, not just built: a risk row's columns are nullable where the ward view's are not."""
    patient, risk = row
    fields = {name: getattr(patient, name) for name in ("location", "created_at", "discharged_at")}
    due = next_observation(latest_set(fields, _summary(risk)), schedule, datetime.now(UTC))
    return AtRiskPatient.model_validate(
        {
            "id": patient.id,
            "mrn": patient.mrn,
            "first_name": patient.first_name,
            "last_name": patient.last_name,
            "news2_total": risk.news2_total,
            "band": risk.band,
            "bp_category": risk.bp_category,
            "based_on": risk.based_on,
            "next_observation_due_at": due.at,
            "overdue": due.overdue,
        }
    )


def _flush_unique(session: Session, mrn: str | None) -> None:
    try:
        with session.begin_nested():
            session.flush()
    except IntegrityError as exc:
        if "mrn" in str(exc.orig):
            raise Conflict(f"A patient with MRN {mrn!r} already exists.") from None
        raise
