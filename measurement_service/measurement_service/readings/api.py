"""Routes of the measurement API: /api/v1/measures (alias /api/v1/measurements) and the
patient-scoped /api/v1/patient/{patient_id}/measurements, which NGINX sends here."""

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response, status

from measurement_service.models import EVENT_TABLES, Measurement
from measurement_service.permissions import CreateReading, DeleteReading, ReadAudit, ReadReading, SearchReadings
from measurement_service.readings import pages, service
from measurement_service.readings.patients import PatientDirectory
from measurement_service.readings.schemas import (
    BatchIn,
    BatchOut,
    MeasurementBatchIn,
    MeasurementCreate,
    MeasurementFilter,
    MeasurementOut,
    MeasurementSearch,
    PatientMeasurementFilter,
    Reading,
)
from painkiller_common.db import SessionDep, pg
from painkiller_common.db.outbox import UnitOfWork
from painkiller_common.db.pg import PoolDep
from painkiller_common.errors import NotFound
from painkiller_common.http.answers import IdempotencyKey, respond
from painkiller_common.http.bodies import JsonBody, json_response
from painkiller_common.http.pagination import Page
from painkiller_common.http.problems import problem_responses
from painkiller_common.security import audit
from painkiller_common.security.access import Access
from painkiller_common.security.auth import Forbidden

PREFIX = "/api/v1/measures"
ALIAS_PREFIX = "/api/v1/measurements"


async def get_directory(request: Request) -> PatientDirectory:
    return request.app.state.patient_directory


DirectoryDep = Annotated[PatientDirectory, Depends(get_directory)]
# 409: the same patient, measured_at and source already stored (a single reading), or an
# Idempotency-Key sent again with another body.
WRITE_ERRORS = problem_responses(404, 409, 415, 422, 503)
# Which scope each route needs (doc/security.md); a patient/ token reaches its own patient only.


BATCH_DOC = (
    "Up to 1,000 readings in one transaction, with their events. Any invalid reading refuses the "
    "whole batch (422, each error naming its reading by index: `readings.3.spo2_percent`); nothing "
    "is stored. A reading whose patient, `measured_at` and `source` are already stored is reported "
    "as `duplicate` and not stored again, so re-sending a batch is safe."
)


patient_router = APIRouter(prefix="/api/v1/patient/{patient_id:uuid}/measurements", tags=["measurements"])


@patient_router.post(
    "",
    name="create_for_patient",
    status_code=status.HTTP_201_CREATED,
    response_model=MeasurementOut,
    dependencies=JsonBody,
    responses=WRITE_ERRORS,
)
async def record_for_patient(
    patient_id: uuid.UUID,
    data: Reading,
    pool: PoolDep,
    directory: DirectoryDep,
    access: CreateReading,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """Store a reading for this patient (404 if the patient does not exist)."""
    scope = f"POST /api/v1/patient/{patient_id}/measurements"
    answer = await service.record_one(
        pool=pool,
        directory=directory,
        access=access,
        patient_id=patient_id,
        data=data,
        key=idempotency_key,
        scope=scope,
        location_prefix=PREFIX,
    )
    return respond(answer)


@patient_router.post(
    "/batch",
    name="batch_for_patient",
    response_model=BatchOut,
    dependencies=JsonBody,
    responses=WRITE_ERRORS,
    description=BATCH_DOC,
)
async def record_batch_for_patient(
    patient_id: uuid.UUID,
    batch: BatchIn,
    pool: PoolDep,
    directory: DirectoryDep,
    access: CreateReading,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """Store many readings for this patient."""
    scope = f"POST /api/v1/patient/{patient_id}/measurements/batch"
    answer = await service.record_batch(
        pool=pool,
        directory=directory,
        access=access,
        patient_id=patient_id,
        batch=batch,
        key=idempotency_key,
        scope=scope,
    )
    return respond(answer)


@patient_router.get(
    "", name="list_for_patient", response_model=Page[MeasurementOut], responses=problem_responses(404, 422, 503)
)
async def list_for_patient(
    patient_id: uuid.UUID,
    query: Annotated[PatientMeasurementFilter, Query()],
    pool: PoolDep,
    directory: DirectoryDep,
    access: SearchReadings,
) -> Response:
    """This patient's readings, newest `measured_at` first."""
    access.reach(patient_id)
    async with pg.connection(pool) as conn:
        body = await pages.page_json(conn, access, query, patient_id, check_with=directory)
    return Response(body, media_type="application/json")


def _reachable(session: UnitOfWork, access: Access, measurement_id: uuid.UUID) -> Measurement:
    """The reading, if this caller may see its patient; 404 otherwise, as if it did not exist."""
    measurement = service.get_measurement(session=session, measurement_id=measurement_id)
    if access.only_patient is not None and measurement.patient_id != access.only_patient:
        raise NotFound(f"Measurement {measurement_id} does not exist.")
    return measurement


measures_router = APIRouter(prefix=PREFIX, tags=["measurements"])  # also /api/v1/measurements (spec.py)


@measures_router.post(
    "",
    name="create",
    status_code=status.HTTP_201_CREATED,
    response_model=MeasurementOut,
    dependencies=JsonBody,
    responses=WRITE_ERRORS,
)
async def record(
    data: MeasurementCreate,
    pool: PoolDep,
    directory: DirectoryDep,
    access: CreateReading,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """Store a reading for the patient named by `patient_id` in the body."""
    answer = await service.record_one(
        pool=pool,
        directory=directory,
        access=access,
        patient_id=data.patient_id,
        data=data,
        key=idempotency_key,
        scope=f"POST {PREFIX}",  # a retry through the alias is the same request: it reaches this route
        location_prefix=PREFIX,
    )
    return respond(answer)


@measures_router.post(
    "/batch",
    name="batch",
    response_model=BatchOut,
    dependencies=JsonBody,
    responses=WRITE_ERRORS,
    description=BATCH_DOC,
)
async def record_batch(
    batch: MeasurementBatchIn,
    pool: PoolDep,
    directory: DirectoryDep,
    access: CreateReading,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """Store many readings, each naming its `patient_id`."""
    scope = f"POST {PREFIX}/batch"
    answer = await service.record_batch(
        pool=pool,
        directory=directory,
        access=access,
        patient_id=None,
        batch=batch,
        key=idempotency_key,
        scope=scope,
    )
    return respond(answer)


@measures_router.get("", name="list", response_model=Page[MeasurementOut], responses=problem_responses(422))
async def list_all(query: Annotated[MeasurementFilter, Query()], pool: PoolDep, access: SearchReadings) -> Response:
    """Readings, newest `measured_at` first, optionally for one patient and a time window.
    Without `patient_id`, for `user/` and `system/` tokens only."""
    if access.only_patient is not None:
        if query.patient_id is None:
            raise Forbidden("A patient/ token must name its patient_id.", needed="user/Observation.s")
        access.reach(query.patient_id)
    async with pg.connection(pool) as conn:
        body = await pages.page_json(conn, access, query, query.patient_id)
    return Response(body, media_type="application/json")


@measures_router.post(
    "/list",
    name="list_by_body",
    response_model=Page[MeasurementOut],
    dependencies=JsonBody,
    responses=problem_responses(415, 422),
)
async def list_by_body(query: MeasurementSearch, pool: PoolDep, access: SearchReadings) -> Response:
    """The same as `GET`, with the filters in a JSON body."""
    return await list_all(query, pool, access)


@measures_router.get("/audit", name="audit", response_model=Page[audit.AuditEventOut], responses=problem_responses(422))
def read_audit(query: Annotated[audit.AuditFilter, Query()], session: SessionDep, access: ReadAudit) -> Response:
    """Who read or changed this patient's readings here, newest first (doc/security.md)."""
    page = audit.page(session, EVENT_TABLES.audit_events, query)
    access.record(session, 200, [(None, query.patient_id)])
    return json_response(page)


@measures_router.get(
    "/{measurement_id:uuid}", name="read", response_model=MeasurementOut, responses=problem_responses(404)
)
def get_one(measurement_id: uuid.UUID, session: SessionDep, access: ReadReading) -> MeasurementOut:
    measurement = _reachable(session, access, measurement_id)
    access.record(session, 200, [(measurement.id, measurement.patient_id)])
    return MeasurementOut.model_validate(measurement)


@measures_router.delete(
    "/{measurement_id:uuid}",
    name="delete",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problem_responses(404),
)
def delete(measurement_id: uuid.UUID, session: SessionDep, access: DeleteReading) -> None:
    """Delete a reading. Clients that cannot send DELETE may POST to `.../delete/{measurement_id}`."""
    measurement = _reachable(session, access, measurement_id)
    service.delete_measurement(session=session, measurement=measurement)
    access.record(session, 204, [(measurement.id, measurement.patient_id)])


@measures_router.post(
    "/delete/{measurement_id:uuid}",
    name="delete_by_post",
    status_code=status.HTTP_204_NO_CONTENT,
    # An alias, described on DELETE; left out of the document as the /measurements prefix is.
    include_in_schema=False,
)
def delete_by_post(measurement_id: uuid.UUID, session: SessionDep, access: DeleteReading) -> None:
    """The same as `DELETE`, for clients that only POST."""
    delete(measurement_id, session, access)
