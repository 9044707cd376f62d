"""Routes of the measurement API: /api/v1/measures (alias /api/v1/measurements) and the
patient-scoped /api/v1/patient/{patient_id}/measurements, which NGINX sends here."""

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response, status
from sqlalchemy.orm import Session

from measurement_service import service
from measurement_service.models import EVENT_TABLES
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
from painkiller_common.app import json_response, require_json
from painkiller_common.db import get_session
from painkiller_common.idempotency import IdempotencyKey, Outcome, run_once
from painkiller_common.pagination import Page
from painkiller_common.problems import problem_responses

PREFIX = "/api/v1/measures"
ALIAS_PREFIX = "/api/v1/measurements"


def get_directory(request: Request) -> PatientDirectory:
    return request.app.state.patient_directory


SessionDep = Annotated[Session, Depends(get_session, scope="function")]
DirectoryDep = Annotated[PatientDirectory, Depends(get_directory)]
JsonBody = [Depends(require_json)]
WRITE_ERRORS = problem_responses(404, 415, 422, 503)


def _record_once(
    session: Session, directory: PatientDirectory, patient_id: uuid.UUID, data: Reading, key: str | None, *, scope: str
) -> Response:
    def create() -> Outcome:
        record = service.record_measurement(session=session, directory=directory, patient_id=patient_id, data=data)
        return Outcome(record, location=f"{PREFIX}/{record.id}")

    return run_once(
        session=session, table=EVENT_TABLES.idempotency_keys, key=key, scope=scope, request=data, write=create
    )


def _record_batch_once(
    session: Session,
    directory: PatientDirectory,
    patient_id: uuid.UUID | None,
    batch: BatchIn,
    key: str | None,
    *,
    scope: str,
) -> Response:
    def store() -> Outcome:
        result = service.record_batch(session=session, directory=directory, patient_id=patient_id, batch=batch)
        return Outcome(result, status_code=200)

    return run_once(
        session=session, table=EVENT_TABLES.idempotency_keys, key=key, scope=scope, request=batch, write=store
    )


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
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """Store a reading for this patient (404 if the patient does not exist)."""
    return _record_once(
        session, directory, patient_id, data, idempotency_key, scope=f"POST /api/v1/patient/{patient_id}/measurements"
    )


@patient_router.post(
    "/batch", response_model=BatchOut, dependencies=JsonBody, responses=WRITE_ERRORS, description=BATCH_DOC
)
def record_batch_for_patient(
    patient_id: uuid.UUID,
    batch: BatchIn,
    session: SessionDep,
    directory: DirectoryDep,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """Store many readings for this patient."""
    scope = f"POST /api/v1/patient/{patient_id}/measurements/batch"
    return _record_batch_once(session, directory, patient_id, batch, idempotency_key, scope=scope)


@patient_router.get("", response_model=Page[MeasurementOut], responses=problem_responses(404, 422, 503))
def list_for_patient(
    patient_id: uuid.UUID,
    query: Annotated[PatientMeasurementFilter, Query()],
    session: SessionDep,
    directory: DirectoryDep,
) -> Response:
    """This patient's readings, newest `measured_at` first."""
    check_patient(session, directory, patient_id)
    return json_response(service.list_measurements(session=session, query=query, patient_id=patient_id))


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
        data: MeasurementCreate, session: SessionDep, directory: DirectoryDep, idempotency_key: IdempotencyKey = None
    ) -> Response:
        """Store a reading for the patient named by `patient_id` in the body."""
        # One scope for both prefixes: a retry through the alias is still the same request.
        return _record_once(session, directory, data.patient_id, data, idempotency_key, scope=f"POST {PREFIX}")

    @router.post(
        "/batch", response_model=BatchOut, dependencies=JsonBody, responses=WRITE_ERRORS, description=BATCH_DOC
    )
    def record_batch(
        batch: BatchIn, session: SessionDep, directory: DirectoryDep, idempotency_key: IdempotencyKey = None
    ) -> Response:
        """Store many readings, each naming its `patient_id`."""
        return _record_batch_once(session, directory, None, batch, idempotency_key, scope=f"POST {PREFIX}/batch")

    @router.get("", response_model=Page[MeasurementOut], responses=problem_responses(422))
    def list_all(query: Annotated[MeasurementFilter, Query()], session: SessionDep) -> Response:
        """Readings, newest `measured_at` first, optionally for one patient and a time window."""
        return json_response(service.list_measurements(session=session, query=query, patient_id=query.patient_id))

    @router.post(
        "/list", response_model=Page[MeasurementOut], dependencies=JsonBody, responses=problem_responses(415, 422)
    )
    def list_by_body(query: MeasurementFilter, session: SessionDep) -> Response:
        """The same as `GET`, with the filters in a JSON body."""
        return json_response(service.list_measurements(session=session, query=query, patient_id=query.patient_id))

    @router.get("/{measurement_id}", response_model=MeasurementOut, responses=problem_responses(404, 422))
    def get_one(measurement_id: uuid.UUID, session: SessionDep) -> MeasurementOut:
        return MeasurementOut.model_validate(service.get_measurement(session=session, measurement_id=measurement_id))

    @router.delete("/{measurement_id}", status_code=status.HTTP_204_NO_CONTENT, responses=problem_responses(404, 422))
    def delete(measurement_id: uuid.UUID, session: SessionDep) -> None:
        service.delete_measurement(session=session, measurement_id=measurement_id)

    @router.post(
        "/delete/{measurement_id}", status_code=status.HTTP_204_NO_CONTENT, responses=problem_responses(404, 422)
    )
    def delete_by_post(measurement_id: uuid.UUID, session: SessionDep) -> None:
        """The same as `DELETE`, for clients that only POST."""
        service.delete_measurement(session=session, measurement_id=measurement_id)

    return router
