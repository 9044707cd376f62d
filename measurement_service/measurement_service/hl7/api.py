"""The held HL7 messages, for clinicians: readings waiting for a patient with their MRN (doc/hl7.md)."""

import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select, tuple_

from measurement_service.models import HL7Message
from measurement_service.permissions import SearchHeldMessages
from measurement_service.readings.api import PREFIX
from painkiller_common.db import SessionDep
from painkiller_common.http.pagination import Cursor, Limit, Page, clamp_limit, decode_cursor, page_of
from painkiller_common.http.problems import problem_responses

router = APIRouter(prefix=f"{PREFIX}/hl7", tags=["hl7"])


class HeldFilter(BaseModel):
    model_config = ConfigDict(extra="forbid")

    limit: Limit | None = None
    cursor: Cursor | None = None


class HeldMessage(BaseModel):
    model_config = ConfigDict(
        from_attributes=True,
        json_schema_extra={
            "examples": [
                {
                    "id": "3f6c1a2b-9d4e-4c5f-8a7b-6e5d4c3b2a19", "received_at": "2026-12-03T08:31:02.118Z",
                    "sending_application": "AcmeMonitor", "sending_facility": "ICU-4", "control_id": "MSG-0001",
                    "mrn": "MRN-1001",
                    "readings": [{"measured_at": "2026-12-03T08:30:00Z", "spo2_percent": 96, "heart_rate_bpm": 72}],
                }
            ]
        },
    )  # fmt: skip

    id: uuid.UUID
    received_at: datetime
    sending_application: str = Field(description="MSH-3")
    sending_facility: str = Field(description="MSH-4")
    control_id: str = Field(description="MSH-10")
    mrn: str = Field(description="PID-3: no patient has it yet.")
    readings: list[dict[str, Any]] = Field(
        validation_alias="reading", description="What it will record, in the API's fields and units."
    )


@router.get("/held", name="hl7_held", response_model=Page[HeldMessage], responses=problem_responses(422))
def held(query: Annotated[HeldFilter, Query()], session: SessionDep, access: SearchHeldMessages) -> Page[HeldMessage]:
    """Messages acknowledged but held, oldest first: their MRN is no patient's yet. Their readings
    are recorded within seconds of a patient getting that MRN; after the retention they expire."""
    limit = clamp_limit(query.limit)
    stmt = select(HL7Message).where(HL7Message.state == "held")
    if query.cursor:
        stmt = stmt.where(tuple_(HL7Message.received_at, HL7Message.id) > decode_cursor(query.cursor))
    rows = session.scalars(stmt.order_by(HL7Message.received_at, HL7Message.id).limit(limit + 1)).all()
    access.record(session, 200)  # one row for the search: no patient is known for these
    return page_of(rows, limit, key=lambda row: (row.received_at, row.id), out=HeldMessage.model_validate)
