"""What is stored of an HL7 v2 message (doc/hl7.md): every message, raw, with its state and ACK
code; for an ORU^R01 of a known patient its readings, each with its event and audit row through
the same statement as the JSON API's (readings/statements.py), all in one transaction; for one of
a patient not known yet, the message held, and its readings recorded once a patient has its MRN.

The measurement service learns which patient has an MRN from the patient service (patient events
carry no MRN) and remembers it in its replica, `known_patients.mrn`; the consumer forgets it on
each `patient.updated`, as the MRN may have changed.
"""

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from measurement_service.hl7.messages import Header
from measurement_service.readings import recording, statements
from painkiller_common.db.pg import Connection, Row
from painkiller_common.db.statements import Statement, rows_json
from painkiller_common.observability import logs, tracing
from painkiller_common.security import audit

# Whether the message was accepted before (a resend: same MSH-3, MSH-4 and MSH-10), and which
# patients the replica knows with its MRN: one round trip.
LOOKUP = Statement.compile(
    "SELECT EXISTS (SELECT 1 FROM hl7_messages WHERE sending_application = :sending_application"
    " AND sending_facility = :sending_facility AND control_id = :control_id AND ack_code = 'AA') AS seen,"
    " ARRAY(SELECT patient_id FROM known_patients WHERE mrn = :mrn AND NOT deleted) AS patients"
)
# Remembered for the patient the patient service named, and for no other (an MRN moved from one
# patient to another before the first one's `patient.updated` arrived).
REMEMBER = Statement.compile(
    "WITH cleared AS (UPDATE known_patients SET mrn = NULL WHERE mrn = :mrn AND patient_id <> :patient_id)"
    " INSERT INTO known_patients (patient_id, version, mrn) VALUES (:patient_id, 0, :mrn)"
    " ON CONFLICT (patient_id) DO UPDATE SET mrn = excluded.mrn WHERE NOT known_patients.deleted"
)
_COLUMNS = (
    "id, sending_application, sending_facility, control_id, message_type, sender_address, mrn, state, ack_code,"
    " detail, reading, patient_id, measurement_id, raw"
)
# A message of one reading for a known patient: the reading with its event and audit row, and the
# message kept, in one statement (one round trip, its own transaction). Kept only if its patient
# is still there; a resend on another connection at the same moment is kept once, and its reading
# stored once (the natural key).
RECORD_AND_KEEP = statements.record_one_and(
    f"kept AS (INSERT INTO hl7_messages ({_COLUMNS})"
    " SELECT :message_id, :sending_application, :sending_facility, :control_id, :message_type, :sender_address,"
    " :mrn, CASE WHEN EXISTS (SELECT 1 FROM ins) THEN 'stored' ELSE 'duplicate' END, 'AA', NULL, NULL,"
    " :patient_id::uuid, (SELECT id FROM ins), :raw WHERE (SELECT ok FROM ready)"
    " ON CONFLICT (sending_application, sending_facility, control_id) WHERE ack_code = 'AA' DO NOTHING)"
)
KEEP = Statement.compile(
    f"INSERT INTO hl7_messages ({_COLUMNS}) VALUES (:message_id, :sending_application, :sending_facility,"
    " :control_id, :message_type, :sender_address, :mrn, :state, :ack_code, :detail, :reading::jsonb, :patient_id,"
    " :measurement_id, :raw)"
)
HELD_MRNS = Statement.compile("SELECT DISTINCT mrn FROM hl7_messages WHERE state = 'held' LIMIT 100")
HELD = Statement.compile(
    "SELECT id, reading, sending_application, sending_facility, control_id, sender_address FROM hl7_messages"
    " WHERE state = 'held' AND mrn = :mrn ORDER BY received_at FOR UPDATE SKIP LOCKED"
)
RELEASED = Statement.compile(
    "UPDATE hl7_messages SET state = 'released', patient_id = :patient_id, measurement_id = :measurement_id,"
    " released_at = now() WHERE id = :id"
)
EXPIRE = Statement.compile(
    "UPDATE hl7_messages SET state = 'expired' WHERE state = 'held'"
    " AND received_at < now() - make_interval(days => :days)"
)
HELD_COUNT = Statement.compile("SELECT count(*) AS held FROM hl7_messages WHERE state = 'held'")


@dataclass(frozen=True)
class Kept:
    """A message as it is kept: who sent it, what it is, what became of it."""

    header: Header
    raw: str
    sender_address: str | None
    state: str
    ack_code: str
    mrn: str | None = None
    detail: str | None = None
    readings: list[dict[str, Any]] | None = None
    patient_id: uuid.UUID | None = None
    measurement_id: uuid.UUID | None = None

    def values(self) -> dict[str, Any]:
        return {
            "message_id": uuid.uuid4(),
            **key_of(self.header),
            "message_type": self.header.message_type[:15],
            "sender_address": self.sender_address,
            "mrn": self.mrn,
            "state": self.state,
            "ack_code": self.ack_code,
            "detail": self.detail,
            "reading": rows_json(self.readings) if self.readings is not None else None,
            "patient_id": self.patient_id,
            "measurement_id": self.measurement_id,
            "raw": self.raw,
        }


def key_of(header: Header) -> dict[str, str]:
    """What makes a message the same as one sent before, cut to the columns' sizes."""
    return {
        "sending_application": header.sending_application[:227],
        "sending_facility": header.sending_facility[:227],
        "control_id": header.control_id[:199],
    }


@dataclass(frozen=True)
class Seen:
    before: bool  # accepted before: a resend
    patient_id: uuid.UUID | None  # the patient the replica knows with its MRN, if exactly one


async def look_up(conn: Connection, header: Header, mrn: str) -> Seen:
    row = await LOOKUP.one(conn, {**key_of(header), "mrn": mrn})
    assert row is not None  # a SELECT of two subqueries: one row
    patients = row["patients"]
    return Seen(row["seen"], patients[0] if len(patients) == 1 else None)  # several: one is stale


async def record_and_keep(conn: Connection, kept: Kept, patient_id: uuid.UUID, reading: dict[str, Any]) -> bool:
    """A message of one reading for a known patient, in one statement; False if the patient was
    deleted meanwhile (nothing stored: the caller holds the message)."""
    values = _values(kept.header, kept.sender_address, patient_id, reading, datetime.now(UTC))
    row = await RECORD_AND_KEEP.one(conn, {**values, **kept.values(), "patient_id": patient_id})
    assert row is not None  # a statement of outcomes: one row, always
    return bool(row["alive"])


async def remember(conn: Connection, mrn: str, patient_id: uuid.UUID) -> None:
    await REMEMBER.run(conn, {"mrn": mrn, "patient_id": patient_id})


async def record(conn: Connection, header: Header, sender: str | None, patient_id: uuid.UUID,
                 readings: list[dict[str, Any]]) -> list[uuid.UUID] | None:  # fmt: skip
    """Store the readings, each with its event and audit row (actor: the sending application and
    facility), in the caller's transaction; the ids stored (none for readings already stored:
    the same patient, time and source). None if the patient has been deleted meanwhile."""
    stored: list[uuid.UUID] = []
    now = datetime.now(UTC)
    for reading in readings:
        row = await statements.RECORD_ONE.one(conn, _values(header, sender, patient_id, reading, now))
        assert row is not None  # a statement of outcomes: one row, always
        if not row["alive"]:
            return None
        stored.extend(row["stored"])
    return stored


def _values(header: Header, sender: str | None, patient_id: uuid.UUID, reading: dict[str, Any],
            now: datetime) -> dict[str, Any]:  # fmt: skip
    """RECORD_ONE's values for one reading of a message."""
    fields = {name: None for name in statements.COLUMNS} | reading
    fields["measured_at"] = datetime.fromisoformat(reading["measured_at"])
    fields["source"] = reading.get("source") or f"{header.sending_application}^{header.sending_facility}"[:100]
    row = recording.new_row(patient_id, fields, now)
    values = recording.values_of([row], many=False) | audit.shared_values(_audit_columns(header, sender))
    return values | {"request_id": logs.REQUEST_ID.get(), "traceparent": tracing.traceparent()}


def _audit_columns(header: Header, sender: str | None) -> dict[str, object]:
    """The audit row of a reading from HL7: the sender as actor, `hl7-mllp` as client."""
    return {
        "actor": f"{header.sending_application}@{header.sending_facility}"[:255],
        "client_id": "hl7-mllp",
        "action": "create",
        "resource_type": "Observation",
        "status": 201,
        "request_id": logs.REQUEST_ID.get(),
        "client_address": sender,
    }


async def keep(conn: Connection, kept: Kept) -> None:
    await KEEP.run(conn, kept.values())


async def held_mrns(conn: Connection) -> list[str]:
    return [row["mrn"] for row in await HELD_MRNS.all(conn, {})]


async def release(conn: Connection, mrn: str, patient_id: uuid.UUID) -> int:
    """Record the held messages of the patient now known by `mrn`, in one transaction; how many."""
    released = 0
    async with conn.transaction():
        await remember(conn, mrn, patient_id)
        for message in await HELD.all(conn, {"mrn": mrn}):
            header = Header(message["sending_application"], message["sending_facility"], "", "",
                            message["control_id"], "ORU^R01", "R01", "")  # fmt: skip
            stored = await record(conn, header, message["sender_address"], patient_id, message["reading"])
            await RELEASED.run(conn, _released(message, patient_id, stored or []))
            released += 1
    return released


def _released(message: Row, patient_id: uuid.UUID, stored: list[uuid.UUID]) -> dict[str, Any]:
    return {"id": message["id"], "patient_id": patient_id, "measurement_id": stored[0] if stored else None}


async def expire(conn: Connection, retention_days: int) -> None:
    """Held messages older than the retention are given up (kept, raw, as `expired`)."""
    await EXPIRE.run(conn, {"days": retention_days})


async def held_count(conn: Connection) -> int:
    row = await HELD_COUNT.one(conn, {})
    return int(row["held"]) if row else 0
