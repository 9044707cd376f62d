"""The audit trail: rows written in the request's own transaction, and pages of them to read.

What is recorded and how to read it: doc/security.md.
"""

import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Table, insert, select
from sqlalchemy.orm import Session

from painkiller_common.pagination import Cursor, Limit, Page, clamp_limit, decode_int_cursor, page_of

Touched = list[tuple[uuid.UUID | None, uuid.UUID | None]]


class AuditFilter(BaseModel):
    model_config = ConfigDict(extra="forbid")

    patient_id: uuid.UUID = Field(description="Whose records: every access to them, newest first.")
    limit: Limit | None = None
    cursor: Cursor | None = None


class AuditEventOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    at: datetime
    actor: str = Field(description="The token's `sub`; `anonymous` for a request without a valid token.")
    action: str = Field(description="create, read, update, delete, search or import.")
    resource_type: str
    resource_id: uuid.UUID | None
    status: int = Field(description="The HTTP status the request was answered with.")
    request_id: str | None


def record(session: Session, table: Table, columns: dict[str, object], touched: Touched) -> None:
    """One row per (record id, patient id), in a single statement."""
    session.execute(
        insert(table), [{**columns, "resource_id": resource, "patient_id": patient} for resource, patient in touched]
    )


def page(session: Session, table: Table, query: AuditFilter) -> Page[AuditEventOut]:
    """Keyset pages of one patient's audit rows, newest first (the row id orders them)."""
    limit = clamp_limit(query.limit)
    stmt = select(table).where(table.c.patient_id == query.patient_id).order_by(table.c.id.desc()).limit(limit + 1)
    if query.cursor:
        before, _ = decode_int_cursor(query.cursor, loc=["cursor"])
        stmt = stmt.where(table.c.id < before)
    rows = session.execute(stmt).all()
    return page_of(rows, limit, key=lambda row: (row.id, query.patient_id), out=AuditEventOut.model_validate)
