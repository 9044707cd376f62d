"""Storing readings on the async hot path with one of the statements in statements.py (the
readings, their events, the audit rows and the idempotency claim, one round trip including the
commit): the statement's values, and asking the patient service about a patient the replica does
not know yet."""

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from measurement_service.readings import statements
from measurement_service.readings.patients import PatientDirectory
from painkiller_common.db.pg import Connection, Row
from painkiller_common.db.statements import Statement, rows_json
from painkiller_common.errors import NotFound
from painkiller_common.observability import logs, tracing


@dataclass(frozen=True)
class Stored:
    """What the statement did: the ids it stored and, with a claim, the answer stored before."""

    stored: set[uuid.UUID]
    prior: dict[str, Any] | None = None


def values_of(rows: Sequence[Row], *, many: bool) -> dict[str, Any]:
    """The statement's input: the one row's values, or all rows as one JSON array (ids, times and
    decimals as their text, which PostgreSQL reads back into the columns' types)."""
    out: dict[str, Any] = {"rows": rows_json(rows)} if many else dict(rows[0])
    out["patients"] = sorted({row["patient_id"] for row in rows})
    return out


async def store(
    conn: Connection,
    directory: PatientDirectory,
    records: Sequence[Row],
    *,
    statement: Statement,
    many: bool = False,
    extra: dict[str, Any] | None = None,
) -> Stored:
    """Run `statement` (one of statements.RECORD_*, `many` for RECORD_MANY) for `records`; a
    patient the replica does not know yet is asked of the patient service (404 or 503 from there)
    and the statement run again. 404 for a deleted one."""
    values = {**values_of(records, many=many), **(extra or {})}
    values |= {"request_id": logs.REQUEST_ID.get(), "traceparent": tracing.traceparent()}
    row = await statement.one(conn, values)
    assert row is not None  # a statement of outcomes: one row, always
    if not row["deleted"] and (unknown := _unknown(row, values["patients"])):
        await learn(conn, directory, unknown)
        row = await statement.one(conn, values)
        assert row is not None
    if missing := sorted(row["deleted"]) or _unknown(row, values["patients"]):
        raise NotFound(f"Patient {missing[0]} does not exist.")
    return Stored(stored=set(row["stored"]), prior=row.get("prior"))


def _unknown(row: Row, patients: list[uuid.UUID]) -> list[uuid.UUID]:
    """The patients the replica has no row for, alive or deleted."""
    known = {*row["alive"], *row["deleted"]}
    return [patient for patient in patients if patient not in known]


async def learn(conn: Connection, directory: PatientDirectory, patient_ids: list[uuid.UUID]) -> None:
    """Ask the patient service about patients whose `patient.created` has not arrived yet, and
    remember those that exist (version 0: their events bring the real version)."""
    for patient_id in patient_ids:
        await directory.require(patient_id)
    await statements.LEARN.run(conn, {"patients": patient_ids})


def new_row(patient_id: uuid.UUID, reading: dict[str, Any], now: datetime) -> Row:
    """The stored form of a validated reading: a new id, `measured_at` defaulting to now."""
    return {
        **reading,
        "id": uuid.uuid4(),
        "patient_id": patient_id,
        "recorded_at": now,
        "measured_at": reading.get("measured_at") or now,
    }
