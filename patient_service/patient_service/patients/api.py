"""Routes of the patient API, under /api/v1/patient."""

import dataclasses
import uuid
from typing import Annotated

from fastapi import APIRouter, Body, Depends, Header, Query, Request, Response, status
from fastapi.responses import StreamingResponse
from sqlalchemy import select

from painkiller_common.db import SessionDep, pg
from painkiller_common.db.idempotency import Outcome, run_once
from painkiller_common.db.pg import PoolDep
from painkiller_common.errors import NotFound
from painkiller_common.fields import Text
from painkiller_common.http.answers import IdempotencyKey, respond
from painkiller_common.http.bodies import JsonBody, json_response, require_csv
from painkiller_common.http.pagination import Page
from painkiller_common.http.problems import problem_responses
from painkiller_common.security import audit
from painkiller_common.security.auth import Forbidden
from patient_service.config import Settings
from patient_service.models import EVENT_TABLES, Patient
from patient_service.patients import admissions, imports, service, ward_stream
from patient_service.patients.imports import ImportReport
from patient_service.patients.schemas import (
    AtRiskFilter,
    AtRiskPatient,
    ChartQuery,
    IdentifierMatches,
    IdentifierQuery,
    ObservationChart,
    PatientCreate,
    PatientFilter,
    PatientOut,
    PatientSearch,
    PatientUpdate,
    RiskAssessmentOut,
)
from patient_service.permissions import (
    AdmitPatients,
    CheckExistence,
    CreatePatient,
    DeletePatient,
    FindIdentifiers,
    ImportPatients,
    ListPatients,
    ReadAudit,
    ReadPatient,
    UpdatePatient,
)

PREFIX = "/api/v1/patient"

router = APIRouter(prefix=PREFIX, tags=["patients"])


async def get_app_settings(request: Request) -> Settings:
    return request.app.state.settings


SettingsDep = Annotated[Settings, Depends(get_app_settings)]
# Which scope each route needs (doc/security.md); a patient/ token reaches its own patient only.
# Whether a patient exists, and nothing more: the measurement service's token has this scope only,
# not Patient.r, so a leak of that token reveals no name or MRN (doc/security.md).


def _touched(patients: Page[PatientOut] | Page[AtRiskPatient]) -> list[tuple[uuid.UUID, uuid.UUID]]:
    return [(patient.id, patient.id) for patient in patients.items]


@router.post(
    "",
    name="create",
    status_code=status.HTTP_201_CREATED,
    response_model=PatientOut,
    dependencies=JsonBody,
    responses=problem_responses(404, 409, 415, 422),
)
def create_patient(
    data: PatientCreate,
    session: SessionDep,
    settings: SettingsDep,
    access: CreatePatient,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """Register a patient; the `Location` header gives the new patient's URL. A request repeated
    with the same Idempotency-Key gets the first answer again, or 404 once that patient is deleted."""

    def create() -> Outcome:
        patient = service.create_patient(session=session, data=data)
        return Outcome(
            service.to_out(patient, settings.schedule),
            location=f"{PREFIX}/{patient.id}",
            touched=[(patient.id, patient.id)],
        )

    answer = run_once(
        session=session,
        access=access,
        key=idempotency_key,
        scope=f"POST {PREFIX}",
        request=data,
        write=create,
    )
    return respond(answer)


@router.post(
    "/import",
    name="import",
    response_model=ImportReport,
    dependencies=[Depends(require_csv)],
    responses=problem_responses(415, 422),
    description=imports.__doc__,
    openapi_extra={"requestBody": {"content": {"text/csv": {"schema": imports.BODY_SCHEMA}}}},
)
def import_patients(
    body: Annotated[bytes, Body(media_type="text/csv")], session: SessionDep, access: ImportPatients
) -> ImportReport:
    """Create or update patients from the hospital's CSV file."""
    report, changed = imports.import_patients(session=session, body=body)
    access.record(session, 200, [(patient_id, patient_id) for patient_id in changed])
    return report


@router.get("", name="list", response_model=Page[PatientOut], responses=problem_responses(422))
async def list_patients(
    query: Annotated[PatientFilter, Query()], pool: PoolDep, settings: SettingsDep, access: ListPatients
) -> Response:
    """A page of patients in registration order, optionally filtered by name or MRN."""
    return json_response(await service.list_patients(pool=pool, access=access, query=query, schedule=settings.schedule))


@router.post(
    "/list",
    name="list_by_body",
    response_model=Page[PatientOut],
    dependencies=JsonBody,
    responses=problem_responses(415, 422),
)
async def list_patients_by_body(
    query: PatientSearch, pool: PoolDep, settings: SettingsDep, access: ListPatients
) -> Response:
    """The same as `GET /api/v1/patient`, with the filters in a JSON body."""
    return await list_patients(query, pool, settings, access)


@router.get("/at-risk", name="list_at_risk", response_model=Page[AtRiskPatient], responses=problem_responses(422))
def list_at_risk(
    query: Annotated[AtRiskFilter, Query()], session: SessionDep, settings: SettingsDep, access: ListPatients
) -> Response:
    """The ward view: patients whose NEWS2 band is at least `min_band`, highest score first."""
    page = service.list_at_risk(session=session, query=query, schedule=settings.schedule)
    access.record(session, 200, _touched(page))
    return json_response(page)


@router.get("/audit", name="audit", response_model=Page[audit.AuditEventOut], responses=problem_responses(422))
def read_audit(query: Annotated[audit.AuditFilter, Query()], session: SessionDep, access: ReadAudit) -> Response:
    """Who read or changed this patient's record here, newest first (doc/security.md)."""
    page = audit.page(session, EVENT_TABLES.audit_events, query)
    access.record(session, 200, [(None, query.patient_id)])
    return json_response(page)


@router.get(
    "/{patient_id:uuid}/risk", name="risk", response_model=RiskAssessmentOut, responses=problem_responses(404, 422)
)
def get_risk(
    patient_id: uuid.UUID, session: SessionDep, settings: SettingsDep, access: ReadPatient
) -> RiskAssessmentOut:
    """NEWS2, blood-pressure category and variability from the patient's recent readings."""
    access.reach(patient_id)
    risk = service.get_risk(session=session, patient_id=patient_id, settings=settings)
    access.record(session, 200, [(patient_id, patient_id)])
    return risk


# Not in the OpenAPI document: an endless text/event-stream is not something a generated client or
# a fuzzer can call (each would wait forever); doc/ward.md describes it.
@router.get("/wards/{ward}/events", name="ward_events", include_in_schema=False)
async def ward_events(
    ward: Annotated[str, Text(50)],
    pool: PoolDep,
    settings: SettingsDep,
    access: ListPatients,
    last_event_id: Annotated[str | None, Header(pattern=ward_stream.LAST_EVENT_ID)] = None,
) -> StreamingResponse:
    """The ward's changes as they commit, for its board (doc/ward.md): each event names a patient
    and what happened to them; `Last-Event-ID` resumes after the event it names."""
    position = await ward_stream.start(pool, last_event_id)
    async with pg.connection(pool) as conn:
        await audit.record_async(conn, access.row(200), [(None, None)])  # one row: the stream opened
    stream = ward_stream.events(
        pool, ward, position, poll_s=settings.ward_stream_poll_s, heartbeat_s=settings.ward_stream_heartbeat_s
    )
    # X-Accel-Buffering: NGINX passes each event on at once rather than filling its buffer first.
    headers = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
    return StreamingResponse(stream, media_type="text/event-stream", headers=headers)


@router.get(
    "/{patient_id:uuid}/chart", name="chart", response_model=ObservationChart, responses=problem_responses(404, 422)
)
def get_chart(
    patient_id: uuid.UUID,
    query: Annotated[ChartQuery, Query()],
    session: SessionDep,
    settings: SettingsDep,
    access: ReadPatient,
) -> ObservationChart:
    """The patient's readings of the last hours (72 by default), each with the NEWS2 sub-score of
    each value and the NEWS2 standing once it was taken: the observation chart (doc/ward.md)."""
    access.reach(patient_id)
    chart = service.get_chart(session=session, patient_id=patient_id, hours=query.hours, settings=settings)
    access.record(session, 200, [(patient_id, patient_id)])
    return chart


@router.get("/{patient_id:uuid}", name="read", response_model=PatientOut, responses=problem_responses(404))
async def get_patient(patient_id: uuid.UUID, pool: PoolDep, settings: SettingsDep, access: ReadPatient) -> Response:
    access.reach(patient_id)
    patient = await service.read_patient(pool=pool, access=access, patient_id=patient_id, schedule=settings.schedule)
    return json_response(patient)


# A patient's app must not move itself to SpO2 scale 2 (a lower NEWS2, silenced alerts) or take
# another record number: these are the ward's decisions.
CLINICIANS_FIELDS = frozenset({"spo2_scale", "mrn"})


@router.get("/{patient_id:uuid}/exists", name="exists", status_code=status.HTTP_204_NO_CONTENT, include_in_schema=False)
def patient_exists(patient_id: uuid.UUID, session: SessionDep, access: CheckExistence) -> Response:
    """204 if the patient exists, 404 if not; no record leaves. For the measurement service."""
    if session.scalar(select(Patient.id).where(Patient.id == patient_id)) is None:
        raise NotFound(f"Patient {patient_id} does not exist.")
    access.record(session, 204, [(patient_id, patient_id)])
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/identifiers", name="identifiers", response_model=IdentifierMatches, dependencies=JsonBody, include_in_schema=False
)
def find_identifiers(query: IdentifierQuery, session: SessionDep, access: FindIdentifiers) -> IdentifierMatches:
    """The ids of the patients with these MRNs, and nothing else of them. For the measurement
    service's HL7 listener; the MRNs travel in the body, never in a URL that a log could keep."""
    rows = session.execute(select(Patient.mrn, Patient.id).where(Patient.mrn.in_(query.mrns))).all()
    access.record(session, 200, [(row.id, row.id) for row in rows])
    return IdentifierMatches.model_validate({"patients": [{"mrn": row.mrn, "id": row.id} for row in rows]})


@router.post(
    "/admissions", name="admissions", dependencies=JsonBody, responses=problem_responses(404, 409, 422),
    include_in_schema=False,
)  # fmt: skip
def admit(
    data: admissions.Admission, session: SessionDep, access: AdmitPatients, idempotency_key: IdempotencyKey = None
) -> Response:
    """An ADT message's admission, transfer, discharge or update, for the measurement service's
    HL7 listener; the audit row's actor is the message's sender. Only the patient's id comes back."""
    assert access.principal is not None  # granted: the caller is known
    access = dataclasses.replace(access, principal=dataclasses.replace(access.principal, subject=data.sender))

    def apply() -> Outcome:
        patient, created = admissions.admit(session, data)
        return Outcome(
            admissions.Admitted(patient_id=patient.id, created=created),
            status_code=201 if created else 200,
            touched=[(patient.id, patient.id)],
        )

    answer = run_once(
        session=session, access=access, key=idempotency_key, scope=f"POST {PREFIX}/admissions", request=data,
        write=apply,
    )  # fmt: skip
    return respond(answer)


@router.patch(
    "/{patient_id:uuid}",
    name="update",
    response_model=PatientOut,
    dependencies=JsonBody,
    responses=problem_responses(404, 409, 415, 422),
)
def update_patient(
    patient_id: uuid.UUID, data: PatientUpdate, session: SessionDep, settings: SettingsDep, access: UpdatePatient
) -> PatientOut:
    """Change only the fields sent; setting `age` forgets `birth_date` and the other way round.
    `spo2_scale` and `mrn` are clinicians' fields: a `patient/` token may not change them."""
    access.reach(patient_id)
    if access.only_patient is not None and (sent := sorted(data.model_fields_set & CLINICIANS_FIELDS)):
        raise Forbidden(
            f"{', '.join(sent)}: changed by clinicians only, not with a patient/ token.", needed="user/Patient.u"
        )
    patient = service.update_patient(session=session, patient_id=patient_id, data=data, settings=settings)
    access.record(session, 200, [(patient_id, patient_id)])
    return service.to_out(patient, settings.schedule)


@router.delete(
    "/{patient_id:uuid}", name="delete", status_code=status.HTTP_204_NO_CONTENT, responses=problem_responses(404)
)
def delete_patient(patient_id: uuid.UUID, session: SessionDep, access: DeletePatient) -> None:
    """Delete a patient; their readings follow. Clients that cannot send DELETE may POST to
    `/api/v1/patient/delete/{patient_id}`."""
    access.reach(patient_id)
    service.delete_patient(session=session, patient_id=patient_id)
    access.record(session, 204, [(patient_id, patient_id)])


@router.post(
    "/delete/{patient_id:uuid}",
    name="delete_by_post",
    status_code=status.HTTP_204_NO_CONTENT,
    # An alias, described on DELETE and left out of the document: a fuzzer, like a reader, would
    # take it for a second resource rather than the patient's own URL.
    include_in_schema=False,
)
def delete_patient_by_post(patient_id: uuid.UUID, session: SessionDep, access: DeletePatient) -> None:
    """The same as `DELETE /api/v1/patient/{patient_id}`, for clients that only POST."""
    delete_patient(patient_id, session, access)
