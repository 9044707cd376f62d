"""The audit trail: rows written in the request's own transaction, and pages of them to read.

What is recorded and how to read it: doc/security.md.
"""

import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Table, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

from painkiller_common.db.pg import Connection
from painkiller_common.db.statements import Statement
from painkiller_common.http.pagination import Cursor, Limit, Page, clamp_limit, decode_int_cursor, page_of

Touched = list[tuple[uuid.UUID | None, uuid.UUID | None]]


class AuditFilter(BaseModel):
    model_config = ConfigDict(extra="forbid")

    patient_id: uuid.UUID = Field(description="Whose records: every access to them, newest first.")
    limit: Limit | None = None
    cursor: Cursor | None = None


class AuditEventOut(BaseModel):
    model_config = ConfigDict(
        from_attributes=True,
        json_schema_extra={
            "examples": [
                {
                    "at": "2026-11-27T08:31:02.118Z",
                    "actor": "nurse-jones",
                    "action": "read",
                    "resource_type": "Patient",
                    "resource_id": "0b9f7a8c-2d3e-4f50-8172-8394a5b6c7d8",
                    "status": 200,
                    "request_id": "5f0c8e5bd1a24d7c9b1f6f1f5b3a7c21",
                }
            ]
        },
    )

    at: datetime
    actor: str = Field(description="The token's `sub`; `anonymous` for a request without a valid token.")
    action: str = Field(description="create, read, update, delete, search or import.")
    resource_type: str
    resource_id: uuid.UUID | None
    status: int = Field(description="The HTTP status the request was answered with.")
    request_id: str | None


def count_refusal(session: Session, table: Table, client_address: str | None, status: int) -> None:
    """One more refusal without a valid token from this address, in this minute."""
    minute = func.date_trunc("minute", func.now())
    upsert = pg_insert(table).values(minute=minute, client_address=client_address or "", status=status, requests=1)
    session.execute(
        upsert.on_conflict_do_update(
            index_elements=[table.c.minute, table.c.client_address, table.c.status],
            set_={"requests": table.c.requests + 1},
        )
    )


# The columns every row of one request shares (Access.row).
SHARED = ("actor", "client_id", "action", "resource_type", "status", "request_id", "client_address")


def insert_from(source: str, *, resource_id: str, patient_id: str) -> str:
    """SQL (named parameters, db/statements.py) inserting one audit row per row of `source` (a
    CTE, or `unnest(...)`): a hot statement's audit rows ride in it, and `record` is one of these
    too. The shared columns are the parameters `:audit_<column>` (`shared_values`);
    `resource_id` and `patient_id` are SQL over `source`."""
    casts = [f":audit_{name}::{'int2' if name == 'status' else 'text'}" for name in SHARED]
    return (
        f"INSERT INTO audit_events ({', '.join(SHARED)}, resource_id, patient_id) "
        f"SELECT {', '.join(casts)}, {resource_id}, {patient_id} FROM {source}"
    )


def shared_values(columns: dict[str, object]) -> dict[str, object]:
    """The values of `insert_from`'s shared parameters, from a request's columns (Access.row)."""
    return {f"audit_{name}": columns[name] for name in SHARED}


_RECORD = Statement.compile(
    insert_from("unnest(:resources::uuid[], :patients::uuid[]) AS t(r, p)", resource_id="r", patient_id="p")
)


def _record_values(columns: dict[str, object], touched: Touched) -> dict[str, object]:
    return {**shared_values(columns), "resources": [r for r, _ in touched], "patients": [p for _, p in touched]}


def record(session: Session, columns: dict[str, object], touched: Touched) -> None:
    """One row per (record id, patient id), in a single statement, in `session`'s transaction."""
    _RECORD.run_sync(session, _record_values(columns, touched))


async def record_async(conn: Connection, columns: dict[str, object], touched: Touched) -> None:
    """`record`, on a connection of the async hot path (db/pg.py)."""
    await _RECORD.run(conn, _record_values(columns, touched))


def page(session: Session, table: Table, query: AuditFilter) -> Page[AuditEventOut]:
    """Keyset pages of one patient's audit rows, newest first (the row id orders them)."""
    limit = clamp_limit(query.limit)
    stmt = select(table).where(table.c.patient_id == query.patient_id).order_by(table.c.id.desc()).limit(limit + 1)
    if query.cursor:
        before, _ = decode_int_cursor(query.cursor)
        stmt = stmt.where(table.c.id < before)
    rows = session.execute(stmt).all()
    return page_of(rows, limit, key=lambda row: (row.id, query.patient_id), out=AuditEventOut.model_validate)
