"""A page of readings in one statement: the rows, their JSON (built by PostgreSQL, as for events),
the page's audit rows and, for one patient's readings, the replica's word on that patient
(doc/performance.md). Newest `measured_at` first; ties broken by id so pages never skip or repeat a
row.
"""

import json
import uuid

from measurement_service.readings import statements
from measurement_service.readings.patients import PatientDirectory
from measurement_service.readings.schemas import PatientMeasurementFilter
from painkiller_common.db.pg import Connection
from painkiller_common.db.statements import Statement
from painkiller_common.errors import NotFound
from painkiller_common.http.pagination import clamp_limit, decode_cursor, encode_cursor
from painkiller_common.security import audit
from painkiller_common.security.access import Access

EMPTY = '{"items":[],"next_cursor":null}'


def _statement(
    query: PatientMeasurementFilter, patient_id: uuid.UUID | None, access: Access, *, scoped: bool
) -> tuple[Statement, dict[str, object]]:
    """The page's statement (statements.page, by the filters it has) and its values."""
    after_at, after_id = decode_cursor(query.cursor) if query.cursor else (None, None)
    statement = statements.page(
        scoped=scoped,
        by_patient=patient_id is not None,
        since=query.since is not None,
        until=query.until is not None,
        after=query.cursor is not None,
    )
    limit = clamp_limit(query.limit)
    values = {
        "patient": patient_id,
        "since": query.since,
        "until": query.until,
        "after_at": after_at,
        "after_id": after_id,
        "fetch": limit + 1,
        "limit": limit,
        **audit.shared_values(access.row(200)),
    }
    return statement, values


async def page_json(
    conn: Connection,
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
    statement, values = _statement(query, patient_id, access, scoped=scoped)
    row = await statement.one(conn, values)
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
