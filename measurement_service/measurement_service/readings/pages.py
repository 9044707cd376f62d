"""A page of readings in one statement: the rows, their JSON (built by PostgreSQL, as for events),
the page's audit rows and, for one patient's readings, the replica's word on that patient
(doc/performance.md). Newest `measured_at` first; ties broken by id so pages never skip or repeat a
row.
"""

import json
import uuid

import asyncpg

from measurement_service.readings.patients import PatientDirectory
from measurement_service.readings.recording import COLUMNS, row_json
from measurement_service.readings.schemas import PatientMeasurementFilter
from painkiller_common.errors import NotFound
from painkiller_common.http.pagination import clamp_limit, decode_cursor, encode_cursor
from painkiller_common.security import audit
from painkiller_common.security.access import Access

ORDER = "measured_at DESC, id DESC"
EMPTY = '{"items":[],"next_cursor":null}'


class _Args(list[object]):
    def __call__(self, value: object) -> str:
        """`value` as the statement's next parameter."""
        self.append(value)
        return f"${len(self)}"


def _statement(
    query: PatientMeasurementFilter, patient_id: uuid.UUID | None, access: Access, *, scoped: bool
) -> tuple[str, list[object]]:
    """The page's statement and its parameters. `scoped`: one patient's readings, shown only if the
    replica knows the patient and not as deleted."""
    arg, where, ctes = _Args(), [], []
    patient = arg(patient_id)
    if scoped:
        ctes.append(f"known AS (SELECT deleted FROM known_patients WHERE patient_id = {patient}::uuid)")
        where.append("(SELECT NOT deleted FROM known)")  # NULL, so nothing, for an unknown patient
    if patient_id is not None:
        where.append(f"patient_id = {patient}::uuid")
    if query.since is not None:
        where.append(f"measured_at >= {arg(query.since)}")
    if query.until is not None:
        where.append(f"measured_at < {arg(query.until)}")
    if query.cursor:
        at, row_id = decode_cursor(query.cursor)
        where.append(f"(measured_at, id) < ({arg(at)}, {arg(row_id)})")
    limit = clamp_limit(query.limit)
    filters = f" WHERE {' AND '.join(where)}" if where else ""
    ctes.append(
        f"fetched AS (SELECT {', '.join(COLUMNS)} FROM measurements{filters} ORDER BY {ORDER} LIMIT {arg(limit + 1)})"
    )
    ctes.append(f"page AS (SELECT * FROM fetched ORDER BY {ORDER} LIMIT {arg(limit)})")
    # One audit row per reading shown; one for the patient when the page is empty.
    shown = "(SELECT NOT deleted FROM known)" if scoped else "true"
    touched = (
        f"(SELECT id, patient_id FROM page UNION ALL SELECT NULL::uuid, {patient}::uuid"
        f" WHERE NOT EXISTS (SELECT 1 FROM page) AND {shown}) AS touched"
    )
    first = len(arg) + 1
    arg.extend(audit.shared_values(access.row(200)))
    ctes.append(
        f"audited AS ({audit.insert_from(touched, first, resource_id='touched.id', patient_id='touched.patient_id')})"
    )
    outputs = [
        "(SELECT deleted FROM known) AS deleted" if scoped else "NULL::bool AS deleted",
        "(SELECT count(*) FROM fetched) AS fetched",
        f"(SELECT coalesce(json_agg({row_json('page')} ORDER BY {ORDER}), '[]')::text FROM page) AS items",
        "(SELECT measured_at FROM page ORDER BY measured_at, id LIMIT 1) AS last_at",
        "(SELECT id FROM page ORDER BY measured_at, id LIMIT 1) AS last_id",
    ]
    return "WITH " + ",\n".join(ctes) + "\nSELECT " + ", ".join(outputs), arg


async def page_json(
    conn: asyncpg.Connection,
    access: Access,
    query: PatientMeasurementFilter,
    patient_id: uuid.UUID | None,
    *,
    check_with: PatientDirectory | None = None,
) -> str:
    """The page as the API answers it (`Page[MeasurementOut]`), audited: one round trip. With
    `check_with`, one patient's page: 404 unless the patient exists, the patient service asked
    only when the replica has not heard of the patient yet."""
    scoped = check_with is not None
    sql, args = _statement(query, patient_id, access, scoped=scoped)
    row = await conn.fetchrow(sql, *args)
    assert row is not None
    if check_with is not None and row["deleted"] is None:  # created a moment ago, or never: no readings
        assert patient_id is not None
        await check_with.require(patient_id)
        await access.record_async(conn, 200, [(None, patient_id)])
        return EMPTY
    if row["deleted"]:
        raise NotFound(f"Patient {patient_id} does not exist.")
    more = row["fetched"] > clamp_limit(query.limit)
    cursor = encode_cursor(row["last_at"], row["last_id"]) if more else None
    return f'{{"items":{row["items"]},"next_cursor":{json.dumps(cursor)}}}'
