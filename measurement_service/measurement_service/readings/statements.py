"""The measurement service's hot statements, each written once and named: storing readings (with
their events, audit rows and Idempotency-Key claim) and reading a page of them, each one round
trip (doc/performance.md). Parameters are named (`:patients`, db/statements.py), so the SQL reads
as SQL; each statement is compiled once, at import, or once per shape of page.

Storing: nothing is stored unless every patient named is known and not deleted, and those
patients' replica rows are taken `FOR SHARE`: a `patient.deleted` being applied waits for the
statement, then erases what it stored, so no reading outlives its patient. A reading already
stored (same patient, time and source) is skipped by its natural key, and reported as not stored.

The JSON of a reading (its event, a page) is built by PostgreSQL from the row, as the contract's
model writes it; measurement_service/tests/test_measurement_json.py holds the two side by side.
"""

import functools

from measurement_service.models import Measurement
from measurement_service.readings import events
from painkiller_common.contracts import MeasurementRecorded
from painkiller_common.db.pg import column_types
from painkiller_common.db.statements import Statement
from painkiller_common.security import audit

TYPES = column_types(Measurement.metadata.tables[Measurement.__tablename__])
COLUMNS = list(TYPES)
RECORDED = MeasurementRecorded.model_fields["type"].default


def _utc(timestamp: str) -> str:
    """SQL writing a timestamptz as pydantic does: UTC with a Z, microseconds only when not zero."""
    utc = f"({timestamp}) AT TIME ZONE 'UTC'"
    return (
        f"CASE WHEN date_part('microseconds', {utc})::int % 1000000 = 0"
        f""" THEN to_char({utc}, 'YYYY-MM-DD"T"HH24:MI:SS"Z"')"""
        f""" ELSE to_char({utc}, 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') END"""
    )


def _float(column: str) -> str:
    """SQL writing a double as pydantic does: a whole number keeps its `.0` (38.0, not 38), so a
    client that types numbers by their spelling reads the same type from a page, an event and a
    single reading. (The ranges keep every stored value far from exponent notation.)"""
    return (
        f"(CASE WHEN {column} = trunc({column}) THEN to_json({column})::text || '.0'"
        f" ELSE to_json({column})::text END)::json"
    )


def _value(alias: str, name: str) -> str:
    column = f"{alias}.{name}"
    if TYPES[name].startswith("TIMESTAMP"):
        return _utc(column)
    return _float(column) if TYPES[name] == "DOUBLE PRECISION" else column


# The `measurement.recorded` event of a stored row, built by PostgreSQL from the row itself: the
# same JSON the contract's model gives (painkiller_common.contracts.MeasurementRecorded), without
# a Python object per reading.
def row_json(alias: str) -> str:
    """SQL for the JSON of a measurements row under `alias`, as MeasurementOut serialises it."""
    fields = (f"'{name}', {_value(alias, name)}" for name in COLUMNS)
    return f"json_build_object({', '.join(fields)})"


PAYLOAD_JSON = row_json("i")
EVENT_JSON = (
    f"json_build_object('event_id', i.event_id, 'version', 1, 'occurred_at', {_utc('now()')}, 'aggregate_id', i.id,"
    f" 'aggregate_version', {events.RECORDED_VERSION}, 'type', '{RECORDED}', 'payload', {PAYLOAD_JSON})::text"
)


# --- storing readings -------------------------------------------------------------------------


def _input(*, many: bool) -> str:
    """The readings to store: one row of scalar parameters, or a JSON array of rows that
    PostgreSQL reads into the table's own types (an array per column cost psycopg more in Python,
    element by element, than the insert itself)."""
    if many:
        columns = ", ".join(COLUMNS)
        return f"input AS (SELECT {columns} FROM json_populate_recordset(NULL::measurements, :rows::json))"
    return "input AS (SELECT " + ", ".join(f":{name}::{TYPES[name]} AS {name}" for name in COLUMNS) + ")"


_KNOWN = "known AS (SELECT patient_id, deleted FROM known_patients WHERE patient_id = ANY(:patients::uuid[]) FOR SHARE)"
_READY = "ready AS (SELECT count(*) = cardinality(:patients::uuid[]) AS ok FROM known WHERE NOT deleted)"
_PRIOR = (
    "prior AS (SELECT fingerprint, status_code, body, location, erased_at, patient_ids FROM idempotency_keys"
    " WHERE scope = :scope::text AND key = :key::text)"
)
_STORE_IF_READY = "(SELECT ok FROM ready)"
_STORE_IF_READY_AND_NEW = "(SELECT ok FROM ready) AND NOT EXISTS (SELECT 1 FROM prior)"


def _insert(store_if: str) -> str:
    columns = ", ".join(COLUMNS)
    return (
        f"ins AS (INSERT INTO measurements ({columns}) SELECT {columns} FROM input WHERE {store_if}"
        " ON CONFLICT DO NOTHING RETURNING id, patient_id)"
    )


# An event per reading stored, with the request's ids (observability/logs.py).
_OUTBOXED = (
    "outboxed AS (INSERT INTO outbox (event_id, event_type, aggregate_id, body, request_id, traceparent)"
    f" SELECT i.event_id, '{RECORDED}', i.id, {EVENT_JSON}, :request_id::text, :traceparent::text"
    " FROM (SELECT gen_random_uuid() AS event_id, input.* FROM input JOIN ins USING (id)) AS i)"
)
_AUDITED = f"audited AS ({audit.insert_from('ins', resource_id='ins.id', patient_id='ins.patient_id')})"
# A batch's: a row per reading stored, or one for the request if it stored none (all duplicates);
# none while a patient is unknown, as the statement then runs again (recording.store).
_NOTHING_STORED = "(SELECT ok FROM ready) AND NOT EXISTS (SELECT 1 FROM ins)"
_AUDITED_BATCH = (
    "audited AS ("
    + audit.insert_from(
        f"(SELECT id, patient_id FROM ins UNION ALL SELECT NULL::uuid, NULL::uuid WHERE {_NOTHING_STORED}) AS t",
        resource_id="t.id",
        patient_id="t.patient_id",
    )
    + ")"
)
# The key and the answer to replay, stored only if the reading was.
_CLAIMED = (
    "claimed AS (INSERT INTO idempotency_keys"
    " (scope, key, fingerprint, status_code, body, location, patient_ids, record_ids)"
    " SELECT :scope::text, :key::text, :fingerprint::text, :status::int2, :answer::text, :location::text,"
    " :patients::uuid[], :records::uuid[] FROM (SELECT 1 FROM ins LIMIT 1) AS one)"
)
# What the statement did: the patients alive and deleted among those named, the readings stored.
_OUTCOME = [
    "(SELECT coalesce(array_agg(patient_id), '{}') FROM known WHERE NOT deleted) AS alive",
    "(SELECT coalesce(array_agg(patient_id), '{}') FROM known WHERE deleted) AS deleted",
    "(SELECT coalesce(array_agg(id), '{}') FROM ins) AS stored",
]
_PRIOR_ANSWER = "(SELECT row_to_json(prior) FROM prior) AS prior"


def _with(ctes: list[str], outputs: list[str]) -> Statement:
    return Statement.compile("WITH " + ",\n".join(ctes) + "\nSELECT " + ", ".join(outputs))


def record_one_and(*more: str) -> Statement:
    """RECORD_ONE, and more CTEs after its own, which may read `ins` (the reading stored, if it
    was) and `ready` (its patient known and not deleted): the HL7 listener keeps its message in
    the same statement (hl7/store.py)."""
    return _with([_input(many=False), _KNOWN, _READY, _insert(_STORE_IF_READY), _OUTBOXED, _AUDITED, *more], _OUTCOME)


# One reading, its event and audit row.
RECORD_ONE = record_one_and()
# The same with an Idempotency-Key: stored and claimed only if the key has no answer yet, else that
# answer (`prior`) to replay.
RECORD_ONE_ONCE = _with(
    [_input(many=False), _KNOWN, _READY, _PRIOR, _insert(_STORE_IF_READY_AND_NEW), _OUTBOXED, _AUDITED, _CLAIMED],
    [*_OUTCOME, _PRIOR_ANSWER],
)
# A batch: its answer (stored or duplicate, per reading) is known only after it ran, so the answer
# is stored in the same transaction (db/idempotency.run_once_async); its audit rows ride in it.
RECORD_MANY = _with([_input(many=True), _KNOWN, _READY, _insert(_STORE_IF_READY), _OUTBOXED, _AUDITED_BATCH], _OUTCOME)

# Patients the patient service vouched for before their `patient.created` arrived (version 0:
# their events bring the real version).
LEARN = Statement.compile(
    "INSERT INTO known_patients (patient_id, version) SELECT unnest(:patients::uuid[]), 0"
    " ON CONFLICT (patient_id) DO NOTHING"
)


# --- a page of readings -----------------------------------------------------------------------

PAGE_ORDER = "measured_at DESC, id DESC"


@functools.cache
def page(*, scoped: bool, by_patient: bool, since: bool, until: bool, after: bool) -> Statement:
    """A page of readings, newest first, with its JSON and its audit rows, compiled once per shape
    (which filters it has). `scoped`: one patient's readings, shown only if the replica knows the
    patient and not as deleted. Parameters: `patient`, `since`, `until`, `after_at` and
    `after_id` (the cursor), `fetch` (one more than `limit`, to tell whether a next page exists),
    `limit`, and the audit columns."""
    where, ctes = [], []
    if scoped:
        ctes.append("known AS (SELECT deleted FROM known_patients WHERE patient_id = :patient::uuid)")
        where.append("(SELECT NOT deleted FROM known)")  # NULL, so nothing, for an unknown patient
    if by_patient:
        where.append("patient_id = :patient::uuid")
    if since:
        where.append("measured_at >= :since")
    if until:
        where.append("measured_at < :until")
    if after:
        where.append("(measured_at, id) < (:after_at, :after_id)")
    filters = f" WHERE {' AND '.join(where)}" if where else ""
    fetched = f"SELECT {', '.join(COLUMNS)} FROM measurements{filters} ORDER BY {PAGE_ORDER} LIMIT :fetch"
    ctes.append(f"fetched AS ({fetched})")
    ctes.append(f"page AS (SELECT * FROM fetched ORDER BY {PAGE_ORDER} LIMIT :limit)")
    # One audit row per reading shown; one for the patient when the page is empty.
    shown = "(SELECT NOT deleted FROM known)" if scoped else "true"
    touched = (
        "(SELECT id, patient_id FROM page UNION ALL SELECT NULL::uuid, :patient::uuid"
        f" WHERE NOT EXISTS (SELECT 1 FROM page) AND {shown}) AS touched"
    )
    ctes.append(f"audited AS ({audit.insert_from(touched, resource_id='touched.id', patient_id='touched.patient_id')})")
    outputs = [
        "(SELECT deleted FROM known) AS deleted" if scoped else "NULL::bool AS deleted",
        "(SELECT count(*) FROM fetched) AS fetched",
        f"(SELECT coalesce(json_agg({row_json('page')} ORDER BY {PAGE_ORDER}), '[]')::text FROM page) AS items",
        "(SELECT measured_at FROM page ORDER BY measured_at, id LIMIT 1) AS last_at",
        "(SELECT id FROM page ORDER BY measured_at, id LIMIT 1) AS last_id",
    ]
    return _with(ctes, outputs)
