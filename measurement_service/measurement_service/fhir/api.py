"""FHIR R4 routes the measurement service owns (doc/fhir.md): vital-signs `Observation` read,
search and create, and transaction Bundles of Observations of one measurement.

A create is stored as a reading by the JSON API's own use case: the same validation, events,
audit row and `Idempotency-Key`.
"""

import uuid
from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.observation import Observation

from measurement_service.fhir import observations as fhir_observations
from measurement_service.fhir.observations import Posted
from measurement_service.permissions import CreateReading, ReadReading, SearchReadings
from measurement_service.readings import service
from measurement_service.readings.api import DirectoryDep
from measurement_service.readings.schemas import MeasurementOut
from painkiller_common import fhir
from painkiller_common.db import pg
from painkiller_common.db.idempotency import Answer
from painkiller_common.db.pg import PoolDep
from painkiller_common.errors import NotFound
from painkiller_common.fhir.capability import search_parameters
from painkiller_common.fhir.vitals import observation, observation_id, parse_observation_id
from painkiller_common.http.answers import IdempotencyKey, answer_headers
from painkiller_common.http.bodies import JsonBody
from painkiller_common.security.access import Access

router = APIRouter(prefix=fhir.PREFIX, include_in_schema=False)

OBSERVATION_SEARCH = search_parameters("Observation")


def _base(request: Request) -> str:
    return fhir.base_url(request, request.app.state.settings.fhir_base_url)


@dataclass
class Writer:
    """What storing a reading takes, as the JSON API's record routes have it."""

    pool: PoolDep
    directory: DirectoryDep
    access: CreateReading
    key: IdempotencyKey = None

    async def store(self, request: Request, posted: Posted) -> "Stored":
        """Store the reading as `POST /api/v1/patient/{id}/measurements` would, and return its
        stored form (the use case raises what it refuses; its answer, first or replayed, is the 201's)."""
        assert posted.patient_id is not None  # Posted.add sets it from every Observation
        answer = await service.record_one(
            pool=self.pool,
            directory=self.directory,
            access=self.access,
            patient_id=posted.patient_id,
            data=posted.reading(),
            key=self.key,
            # The patient is in the JSON route's path, so in its scope; here it is in the body, and
            # a key sent again for another patient must not answer with the first one's reading.
            scope=f"POST {request.url.path} Patient/{posted.patient_id}",
            location_prefix="/api/v1/measures",
        )
        # The answer's JSON is the stored reading (as first stored, when the key replays it).
        return Stored(MeasurementOut.model_validate_json(answer.body), answer)


WriterDep = Annotated[Writer, Depends()]


@router.get("/Observation/{resource_id}", name="fhir_observation_read")
async def read_observation(resource_id: str, pool: PoolDep, access: ReadReading) -> Response:
    named = parse_observation_id(resource_id)
    async with pg.connection(pool) as conn, conn.transaction():
        row = await fhir_observations.read(conn, named[0]) if named else None
        if named is None or row is None or any(row[q.field] is None for q in named[1].quantities):
            raise NotFound(f"Observation {resource_id} does not exist.")
        access.reach(row["patient_id"])
        await access.record_async(conn, 200, [(row["id"], row["patient_id"])])
    found = observation(named[1], row, measurement_id=row["id"], patient_id=row["patient_id"], at=row["measured_at"])
    return fhir.resource_response(found)


@router.get("/Observation", name="fhir_observation_search")
async def search_observations(request: Request, pool: PoolDep, access: SearchReadings) -> Response:
    query = fhir.search(request, OBSERVATION_SEARCH)
    if any(value != "-date" for value in query.values("_sort")):
        raise fhir.BadRequest("_sort: only -date (newest first) is served.")
    async with pg.connection(pool) as conn, conn.transaction():
        found = await fhir_observations.search(conn, query, _patients(query, access))
        await access.record_async(conn, 200, found.touched)
    bundle = fhir.searchset(_base(request), "Observation", query, found.observations, found.next_cursor)
    return fhir.resource_response(bundle)


def _patients(query: fhir.Search, access: Access) -> list[uuid.UUID] | None:
    """Whose Observations to search, within what the token reaches; None: everyone's. A comma
    separates alternatives (`patient=a,b`); repeated parameters must all hold (FHIR's AND)."""
    sets = [
        {_uuid(fhir.reference_id(name, one, "Patient")) for one in value.split(",")}
        for name in ("patient", "subject")
        for value in query.values(name)
    ]
    if access.only_patient is not None:
        sets.append({access.only_patient})
    if not sets:
        return None
    return sorted(patient for patient in set.intersection(*sets) if patient is not None)


def _uuid(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value)
    except ValueError:
        return None  # no patient has that id: it matches nothing


@router.post("/Observation", name="fhir_observation_create", dependencies=JsonBody)
async def create_observation(request: Request, body: fhir.RawBody, writer: WriterDep) -> Response:
    resource = await fhir.parse_off_the_loop(Observation, body)
    assert isinstance(resource, Observation)  # parse_resource returns the model it is given
    posted = Posted()
    posted.add(resource, "Observation")
    if (existing := await _existing(request, writer, posted)) is not None:
        return fhir.resource_response(existing)  # If-None-Exist matched: nothing is created
    stored = await writer.store(request, posted)
    created = _observations(stored.reading, posted)[0]
    return fhir.resource_response(created, 201, stored.headers(f"{_base(request)}/Observation/{created.id}"))


@router.post("", name="fhir_transaction", dependencies=JsonBody)
async def transaction(request: Request, body: fhir.RawBody, writer: WriterDep) -> Response:
    """A transaction Bundle of Observations of one measurement (one patient, one time), stored as
    one reading: all of them or none."""
    bundle = await fhir.parse_off_the_loop(Bundle, body)
    assert isinstance(bundle, Bundle)  # parse_resource returns the model it is given
    if bundle.type != "transaction":
        raise fhir.BadRequest("Only transaction Bundles are processed here.")
    posted = Posted()
    for index, entry in enumerate(bundle.entry or []):
        at = f"Bundle.entry[{index}]"
        if entry.request is None or entry.request.method != "POST" or entry.request.url != "Observation":
            raise fhir.BadRequest(f"{at}.request: only POST Observation is processed.")
        if not isinstance(entry.resource, Observation):
            raise fhir.BadRequest(f"{at}.resource: an Observation is needed.")
        posted.add(entry.resource, f"{at}.resource")
    if not posted.vitals:
        raise fhir.BadRequest("The Bundle holds no Observation.")
    stored = await writer.store(request, posted)
    entries = [
        {"response": {"status": "201 Created", "location": f"Observation/{observation_id(stored.reading.id, vital)}"}}
        for vital in posted.vitals
    ]
    answer = Bundle.model_validate({"resourceType": "Bundle", "type": "transaction-response", "entry": entries})
    return fhir.resource_response(answer, headers=stored.headers())


async def _existing(request: Request, writer: Writer, posted: Posted) -> Observation | None:
    """The Observation a conditional create's `If-None-Exist` matches, if one does; 412 if several.

    The condition is a search, and is treated as one: it needs the search permission and is
    audited as a search. It may only look at the posted Observation's own subject (naming another
    patient is 400): a create must not become a way to read, or to learn of, anyone else's."""
    query = fhir.condition(request, OBSERVATION_SEARCH)
    if query is None:
        return None
    access = writer.access.also(request, "Observation", "s", action="search")
    assert posted.patient_id is not None  # Posted.add sets it from every Observation
    access.reach(posted.patient_id)
    if _patients(query, access) not in (None, [posted.patient_id]):
        raise fhir.BadRequest(f"If-None-Exist may search only the posted subject, Patient/{posted.patient_id}.")
    async with pg.connection(writer.pool) as conn, conn.transaction():
        found = await fhir_observations.search(conn, query, [posted.patient_id])
        await access.record_async(conn, 200, found.touched)
    if len(found.observations) > 1:
        raise fhir.MultipleMatches("If-None-Exist matches more than one Observation.")
    return found.observations[0] if found.observations else None


@dataclass(frozen=True)
class Stored:
    reading: MeasurementOut
    answer: Answer  # the JSON API's answer to the same write, first or replayed

    def headers(self, location: str | None = None) -> dict[str, str]:
        return answer_headers(self.answer, location)


def _observations(stored: MeasurementOut, posted: Posted) -> list[Observation]:
    values = stored.model_dump()
    return [
        observation(vital, values, measurement_id=stored.id, patient_id=stored.patient_id, at=stored.measured_at)
        for vital in posted.vitals
    ]
