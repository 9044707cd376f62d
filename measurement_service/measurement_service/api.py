"""Routes of the measurement API: /api/v1/measures (alias /api/v1/measurements) and the
patient-scoped /api/v1/patient/{patient_id}/measurements, which NGINX sends here."""

import uuid
from collections.abc import Callable
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response, status
from pydantic import BaseModel
from sqlalchemy.orm import Session

from measurement_service import service
from measurement_service.models import EVENT_TABLES, Measurement
from measurement_service.patients import PatientDirectory, check_patient
from measurement_service.schemas import (
    BatchIn,
    BatchOut,
    MeasurementCreate,
    MeasurementFilter,
    MeasurementOut,
    PatientMeasurementFilter,
    Reading,
)
from painkiller_common import audit
from painkiller_common.access import USER_OR_SYSTEM, Access, requires
from painkiller_common.app import json_response, require_json
from painkiller_common.auth import Forbidden
from painkiller_common.db import get_session
from painkiller_common.idempotency import IdempotencyKey, Outcome, run_once
from painkiller_common.pagination import Page
from painkiller_common.problems import NotFound, problem_responses

PREFIX = "/api/v1/measures"
ALIAS_PREFIX = "/api/v1/measurements"


def get_directory(request: Request) -> PatientDirectory:
    return request.app.state.patient_directory


SessionDep = Annotated[Session, Depends(get_session, scope="function")]
DirectoryDep = Annotated[PatientDirectory, Depends(get_directory)]
JsonBody = [Depends(require_json)]
WRITE_ERRORS = problem_responses(404, 415, 422, 503)
# Which scope each route needs (doc/security.md); a patient/ token reaches its own patient only.
CanCreate = Annotated[Access, Depends(requires("Observation", "c"))]
CanRead = Annotated[Access, Depends(requires("Observation", "r"))]
CanSearch = Annotated[Access, Depends(requires("Observation", "s"))]
CanDelete = Annotated[Access, Depends(requires("Observation", "d"))]
CanReadAudit = Annotated[Access, Depends(requires("AuditEvent", "s", contexts=USER_OR_SYSTEM))]


def _touched_readings(page: Page[MeasurementOut], patient_id: uuid.UUID | None) -> audit.Touched:
    return [(m.id, m.patient_id) for m in page.items] or [(None, patient_id)]


def _reach_batch(access: Access, batch: BatchIn) -> None:
    """A patient/ token's batch is refused whole if any reading names another patient."""
    if access.only_patient is None:
        return
    for raw in batch.readings:
        named = raw.get("patient_id")
        if named is not None and str(named) != str(access.only_patient):
            raise NotFound(f"Patient {named} does not exist.")


def _once(
    session: Session, access: Access, key: str | None, scope: str, request: BaseModel, write: Callable[[], Outcome]
) -> Response:
    """Run `write` once per caller and Idempotency-Key, audited (painkiller_common.idempotency)."""
    table = EVENT_TABLES.idempotency_keys
    return run_once(session=session, table=table, access=access, key=key, scope=scope, request=request, write=write)


def _record_once(
    session: Session,
    directory: PatientDirectory,
    access: Access,
    patient_id: uuid.UUID,
    data: Reading,
    key: str | None,
    *,
    scope: str,
) -> Response:
    access.reach(patient_id)

    def create() -> Outcome:
        record = service.record_measurement(session=session, directory=directory, patient_id=patient_id, data=data)
        return Outcome(record, location=f"{PREFIX}/{record.id}", touched=[(record.id, patient_id)])

    return _once(session, access, key, scope, data, create)


def _record_batch_once(
    session: Session,
    directory: PatientDirectory,
    access: Access,
    patient_id: uuid.UUID | None,
    batch: BatchIn,
    key: str | None,
    *,
    scope: str,
) -> Response:
    if patient_id is not None:
        access.reach(patient_id)
    _reach_batch(access, batch)

    def store() -> Outcome:
        result, touched = service.record_batch(session=session, directory=directory, patient_id=patient_id, batch=batch)
        return Outcome(result, status_code=200, touched=touched)

    return _once(session, access, key, scope, batch, store)


BATCH_DOC = (
    "Up to 1,000 readings in one transaction. Each is validated on its own: the valid ones are "
    "stored (with their events), the invalid ones are listed by `index` with their errors, and one "
    "whose patient, `measured_at` and `source` are already stored is reported as `duplicate` and "
    "not stored again, so re-sending a batch is safe. 422 if none is valid."
)


patient_router = APIRouter(prefix="/api/v1/patient/{patient_id}/measurements", tags=["measurements"])


@patient_router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=MeasurementOut,
    dependencies=JsonBody,
    responses=WRITE_ERRORS,
)
def record_for_patient(
    patient_id: uuid.UUID,
    data: Reading,
    session: SessionDep,
    directory: DirectoryDep,
    access: CanCreate,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """Store a reading for this patient (404 if the patient does not exist)."""
    scope = f"POST /api/v1/patient/{patient_id}/measurements"
    return _record_once(session, directory, access, patient_id, data, idempotency_key, scope=scope)


@patient_router.post(
    "/batch", response_model=BatchOut, dependencies=JsonBody, responses=WRITE_ERRORS, description=BATCH_DOC
)
def record_batch_for_patient(
    patient_id: uuid.UUID,
    batch: BatchIn,
    session: SessionDep,
    directory: DirectoryDep,
    access: CanCreate,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """Store many readings for this patient."""
    scope = f"POST /api/v1/patient/{patient_id}/measurements/batch"
    return _record_batch_once(session, directory, access, patient_id, batch, idempotency_key, scope=scope)


@patient_router.get("", response_model=Page[MeasurementOut], responses=problem_responses(404, 422, 503))
def list_for_patient(
    patient_id: uuid.UUID,
    query: Annotated[PatientMeasurementFilter, Query()],
    session: SessionDep,
    directory: DirectoryDep,
    access: CanSearch,
) -> Response:
    """This patient's readings, newest `measured_at` first."""
    access.reach(patient_id)
    check_patient(session, directory, patient_id)
    page = service.list_measurements(session=session, query=query, patient_id=patient_id)
    access.record(session, 200, _touched_readings(page, patient_id))
    return json_response(page)


def _reachable(session: Session, access: Access, measurement_id: uuid.UUID) -> Measurement:
    """The reading, if this caller may see its patient; 404 otherwise, as if it did not exist."""
    measurement = service.get_measurement(session=session, measurement_id=measurement_id)
    if access.only_patient is not None and measurement.patient_id != access.only_patient:
        raise NotFound(f"Measurement {measurement_id} does not exist.")
    return measurement


def measures_router(prefix: str, *, in_schema: bool) -> APIRouter:
    """The /measures routes; built twice so /api/v1/measurements serves the same handlers."""
    router = APIRouter(prefix=prefix, tags=["measurements"], include_in_schema=in_schema)

    @router.post(
        "",
        status_code=status.HTTP_201_CREATED,
        response_model=MeasurementOut,
        dependencies=JsonBody,
        responses=WRITE_ERRORS,
    )
    def record(
        data: MeasurementCreate,
        session: SessionDep,
        directory: DirectoryDep,
        access: CanCreate,
        idempotency_key: IdempotencyKey = None,
    ) -> Response:
        """Store a reading for the patient named by `patient_id` in the body."""
        # One scope for both prefixes: a retry through the alias is still the same request.
        scope = f"POST {PREFIX}"
        return _record_once(session, directory, access, data.patient_id, data, idempotency_key, scope=scope)

    @router.post(
        "/batch", response_model=BatchOut, dependencies=JsonBody, responses=WRITE_ERRORS, description=BATCH_DOC
    )
    def record_batch(
        batch: BatchIn,
        session: SessionDep,
        directory: DirectoryDep,
        access: CanCreate,
        idempotency_key: IdempotencyKey = None,
    ) -> Response:
        """Store many readings, each naming its `patient_id`."""
        scope = f"POST {PREFIX}/batch"
        return _record_batch_once(session, directory, access, None, batch, idempotency_key, scope=scope)

    @router.get("", response_model=Page[MeasurementOut], responses=problem_responses(422))
    def list_all(query: Annotated[MeasurementFilter, Query()], session: SessionDep, access: CanSearch) -> Response:
        """Readings, newest `measured_at` first, optionally for one patient and a time window.
        Without `patient_id`, for `user/` and `system/` tokens only."""
        if access.only_patient is not None:
            if query.patient_id is None:
                raise Forbidden("A patient/ token must name its patient_id.", needed="user/Observation.s")
            access.reach(query.patient_id)
        page = service.list_measurements(session=session, query=query, patient_id=query.patient_id)
        access.record(session, 200, _touched_readings(page, query.patient_id))
        return json_response(page)

    @router.post(
        "/list", response_model=Page[MeasurementOut], dependencies=JsonBody, responses=problem_responses(415, 422)
    )
    def list_by_body(query: MeasurementFilter, session: SessionDep, access: CanSearch) -> Response:
        """The same as `GET`, with the filters in a JSON body."""
        return list_all(query, session, access)

    @router.get("/audit", response_model=Page[audit.AuditEventOut], responses=problem_responses(422))
    def read_audit(query: Annotated[audit.AuditFilter, Query()], session: SessionDep, access: CanReadAudit) -> Response:
        """Who read or changed this patient's readings here, newest first (doc/security.md)."""
        page = audit.page(session, EVENT_TABLES.audit_events, query)
        access.record(session, 200, [(None, query.patient_id)])
        return json_response(page)

    @router.get("/{measurement_id}", response_model=MeasurementOut, responses=problem_responses(404, 422))
    def get_one(measurement_id: uuid.UUID, session: SessionDep, access: CanRead) -> MeasurementOut:
        measurement = _reachable(session, access, measurement_id)
        access.record(session, 200, [(measurement.id, measurement.patient_id)])
        return MeasurementOut.model_validate(measurement)

    @router.delete("/{measurement_id}", status_code=status.HTTP_204_NO_CONTENT, responses=problem_responses(404, 422))
    def delete(measurement_id: uuid.UUID, session: SessionDep, access: CanDelete) -> None:
        measurement = _reachable(session, access, measurement_id)
        service.delete_measurement(session=session, measurement=measurement)
        access.record(session, 204, [(measurement.id, measurement.patient_id)])

    @router.post(
        "/delete/{measurement_id}", status_code=status.HTTP_204_NO_CONTENT, responses=problem_responses(404, 422)
    )
    def delete_by_post(measurement_id: uuid.UUID, session: SessionDep, access: CanDelete) -> None:
        """The same as `DELETE`, for clients that only POST."""
        delete(measurement_id, session, access)

    return router
