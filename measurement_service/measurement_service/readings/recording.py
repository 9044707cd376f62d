"""Storing readings on the async hot path: readings, their events, the audit rows and the
idempotency claim in one statement (data-modifying CTEs), so a single reading costs one round trip
including its commit (doc/performance.md).

The statement stores nothing unless every patient it names is known and not deleted, and it takes
those patients' replica rows `FOR SHARE`: a `patient.deleted` being applied waits for it, then
erases what it stored, so no reading outlives its patient.
"""

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from measurement_service.models import Measurement
from measurement_service.readings import events
from measurement_service.readings.patients import PatientDirectory
from painkiller_common.contracts import MeasurementRecorded
from painkiller_common.db.pg import column_types
from painkiller_common.errors import NotFound
from painkiller_common.observability import logs, tracing
from painkiller_common.security import audit
from painkiller_common.security.access import Access

Row = dict[str, Any]  # a measurements row: column name to value
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
# a Python object per reading; measurement_service/tests/test_measurement_json.py holds the two
# side by side on the values where they could part.
def row_json(alias: str) -> str:
    """SQL for the JSON of a measurements row under `alias`, as MeasurementOut serialises it."""
    fields = (f"'{name}', {_value(alias, name)}" for name in COLUMNS)
    return f"json_build_object({', '.join(fields)})"


PAYLOAD_JSON = row_json("i")
EVENT_JSON = (
    f"json_build_object('event_id', i.event_id, 'version', 1, 'occurred_at', {_utc('now()')}, 'aggregate_id', i.id,"
    f" 'aggregate_version', {events.RECORDED_VERSION}, 'type', '{RECORDED}', 'payload', {PAYLOAD_JSON})::text"
)


class _Params:
    """Numbers the statement's parameters by name, in the order they are first used."""

    def __init__(self) -> None:
        self.names: list[str] = []

    def __call__(self, name: str) -> str:
        if name not in self.names:
            self.names.append(name)
        return f"${self.names.index(name) + 1}"


@dataclass(frozen=True)
class Statement:
    sql: str
    names: list[str]
    many: bool

    def args(self, values: dict[str, Any]) -> list[Any]:
        return [values[name] for name in self.names]


def _input(p: _Params, *, many: bool) -> str:
    """The readings to store: one row of scalar parameters, or `unnest` over an array per column."""
    if many:
        arrays = ", ".join(f"{p(name)}::{TYPES[name]}[]" for name in COLUMNS)
        return f"input AS (SELECT * FROM unnest({arrays}) AS t({', '.join(COLUMNS)}))"
    # Encoding a one-element array per column costs asyncpg more than the insert itself.
    return "input AS (SELECT " + ", ".join(f"{p(name)}::{TYPES[name]} AS {name}" for name in COLUMNS) + ")"


def _patients_ready(p: _Params) -> list[str]:
    """The patients named, locked `FOR SHARE`, and whether every one is known and not deleted."""
    patients = p("patients")
    return [
        f"known AS (SELECT patient_id, deleted FROM known_patients WHERE patient_id = ANY({patients}::uuid[])"
        " FOR SHARE)",
        f"ready AS (SELECT count(*) = cardinality({patients}::uuid[]) AS ok FROM known WHERE NOT deleted)",
    ]


def _insert(p: _Params, store_if: str) -> list[str]:
    """The readings not stored before (natural key), and an event per reading stored, with the
    request's ids (logs.py)."""
    columns = ", ".join(COLUMNS)
    return [
        f"ins AS (INSERT INTO measurements ({columns}) SELECT {columns} FROM input WHERE {store_if}"
        " ON CONFLICT DO NOTHING RETURNING id, patient_id)",
        "outboxed AS (INSERT INTO outbox (event_id, event_type, aggregate_id, body, request_id, traceparent)"
        f" SELECT i.event_id, '{RECORDED}', i.id, {EVENT_JSON}, {p('request_id')}::text, {p('traceparent')}::text"
        " FROM (SELECT gen_random_uuid() AS event_id, input.* FROM input JOIN ins USING (id)) AS i)",
    ]


def _audit_rows(p: _Params) -> str:
    first = len(p.names) + 1
    for name in audit.SHARED:
        p(f"audit_{name}")
    return f"audited AS ({audit.insert_from('ins', first, resource_id='ins.id', patient_id='ins.patient_id')})"


def _prior_answer(p: _Params) -> str:
    return (
        "prior AS (SELECT fingerprint, status_code, body, location, erased_at, patient_ids FROM idempotency_keys"
        f" WHERE scope = {p('scope')}::text AND key = {p('key')}::text)"
    )


def _claim(p: _Params) -> str:
    """The key and the answer to replay, stored only if the reading was."""
    typed = [("scope", "text"), ("key", "text"), ("fingerprint", "text"), ("status", "int2")]
    typed += [("answer", "text"), ("location", "text"), ("patients", "uuid[]"), ("records", "uuid[]")]
    return (
        "claimed AS (INSERT INTO idempotency_keys"
        " (scope, key, fingerprint, status_code, body, location, patient_ids, record_ids)"
        f" SELECT {', '.join(f'{p(name)}::{cast}' for name, cast in typed)} FROM (SELECT 1 FROM ins LIMIT 1) AS one)"
    )


def _statement(*, many: bool, audited: bool, claim: bool) -> Statement:
    """The insert of one reading or `many`, with an audit row per stored reading when `audited`
    and, with `claim`, the Idempotency-Key claimed with its answer when the reading was stored."""
    p = _Params()
    ctes = [_input(p, many=many), *_patients_ready(p)]
    outputs = [
        "(SELECT coalesce(array_agg(patient_id), '{}') FROM known WHERE NOT deleted) AS alive",
        "(SELECT coalesce(array_agg(patient_id), '{}') FROM known WHERE deleted) AS deleted",
        "(SELECT coalesce(array_agg(id), '{}') FROM ins) AS stored",
    ]
    store_if = "(SELECT ok FROM ready)"
    if claim:
        ctes.append(_prior_answer(p))
        store_if += " AND NOT EXISTS (SELECT 1 FROM prior)"
        outputs.append("(SELECT row_to_json(prior) FROM prior) AS prior")
    ctes += _insert(p, store_if)
    if audited:
        ctes.append(_audit_rows(p))
    if claim:
        ctes.append(_claim(p))
    return Statement("WITH " + ",\n".join(ctes) + "\nSELECT " + ", ".join(outputs), p.names, many)


ONE = _statement(many=False, audited=True, claim=False)
ONE_ONCE = _statement(many=False, audited=True, claim=True)
# A batch's answer (stored or duplicate, per reading) is known only after it ran: its audit rows
# and stored answer follow in the same transaction (painkiller_common.db.idempotency.run_once_async).
MANY = _statement(many=True, audited=False, claim=False)


@dataclass(frozen=True)
class Stored:
    """What the statement did: the ids it stored and, with a claim, the answer stored before."""

    stored: set[uuid.UUID]
    prior: dict[str, Any] | None = None


def values_of(rows: Sequence[Row], *, many: bool) -> dict[str, Any]:
    """The statement's input: the one row's values, or an array per column."""
    out: dict[str, Any] = {name: [row[name] for row in rows] for name in COLUMNS} if many else dict(rows[0])
    out["patients"] = sorted({row["patient_id"] for row in rows})
    return out


async def store(
    conn: asyncpg.Connection,
    directory: PatientDirectory,
    records: Sequence[Row],
    *,
    statement: Statement,
    extra: dict[str, Any] | None = None,
) -> Stored:
    """Run `statement` for `records`; a patient the replica does not know yet is asked of the
    patient service (404 or 503 from there) and the statement run again. 404 for a deleted one."""
    values = {**values_of(records, many=statement.many), **(extra or {})}
    values |= {"request_id": logs.REQUEST_ID.get(), "traceparent": tracing.traceparent()}
    row = await conn.fetchrow(statement.sql, *statement.args(values))
    if not row["deleted"] and (unknown := _unknown(row, values["patients"])):
        await learn(conn, directory, unknown)
        row = await conn.fetchrow(statement.sql, *statement.args(values))
    if missing := sorted(row["deleted"]) or _unknown(row, values["patients"]):
        raise NotFound(f"Patient {missing[0]} does not exist.")
    return Stored(stored=set(row["stored"]), prior=row.get("prior"))


def _unknown(row: asyncpg.Record, patients: list[uuid.UUID]) -> list[uuid.UUID]:
    """The patients the replica has no row for, alive or deleted."""
    known = {*row["alive"], *row["deleted"]}
    return [patient for patient in patients if patient not in known]


_LEARN = (
    "INSERT INTO known_patients (patient_id, version) SELECT unnest($1::uuid[]), 0 ON CONFLICT (patient_id) DO NOTHING"
)


async def learn(conn: asyncpg.Connection, directory: PatientDirectory, patient_ids: list[uuid.UUID]) -> None:
    """Ask the patient service about patients whose `patient.created` has not arrived yet, and
    remember those that exist (version 0: their events bring the real version)."""
    for patient_id in patient_ids:
        await directory.require(patient_id)
    await conn.execute(_LEARN, patient_ids)


def audit_values(access: Access, status: int) -> dict[str, Any]:
    values = audit.shared_values(access.row(status))
    return {f"audit_{name}": value for name, value in zip(audit.SHARED, values, strict=True)}


def new_row(patient_id: uuid.UUID, reading: dict[str, Any], now: datetime) -> Row:
    """The stored form of a validated reading: a new id, `measured_at` defaulting to now."""
    return {
        **reading,
        "id": uuid.uuid4(),
        "patient_id": patient_id,
        "recorded_at": now,
        "measured_at": reading.get("measured_at") or now,
    }
