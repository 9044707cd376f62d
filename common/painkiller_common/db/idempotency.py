"""Idempotent writes: a retry with the same `Idempotency-Key` gets the first answer back.

Devices resend on flaky networks; a duplicate reading would skew a patient's trend. The key is
claimed inside the request's own transaction, so the stored answer commits with the rows it
describes. A concurrent retry blocks on the claim until the first request commits, then replays.
A request that fails rolls its claim back, so its key can be used again.

No HTTP here: a write gives an `Answer` (its JSON, status and location, first or replayed), and
each adapter turns it into its own response (http/answers.py for the JSON API; the FHIR routes
read the stored resource back from it).
"""

import hashlib
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel
from sqlalchemy import Table, func, update
from sqlalchemy.orm import Session

from painkiller_common.db import pg
from painkiller_common.db.pg import Connection, Pool
from painkiller_common.db.statements import Statement
from painkiller_common.errors import Conflict, NotFound
from painkiller_common.security.access import Access
from painkiller_common.security.audit import Touched


@dataclass(frozen=True)
class Answer:
    """What a write answers, first or replayed: its JSON as first given (stored with the key, so a
    retry gets the same bytes), its status and, for a create, the new resource's URL."""

    body: str
    status_code: int
    location: str | None = None
    replayed: bool = False


@dataclass(frozen=True)
class Outcome:
    """What a write answers: its body, status and, for a create, the new resource's URL; and the
    (record id, patient id) pairs it touched, for the audit trail and for erasure."""

    body: BaseModel
    status_code: int = 201
    location: str | None = None
    touched: Touched = field(default_factory=list)
    audited: bool = False  # its audit rows written by the write itself (one statement: doc/performance.md)

    @property
    def patient_ids(self) -> list[uuid.UUID]:
        return sorted({patient for _, patient in self.touched if patient is not None})

    @property
    def record_ids(self) -> list[uuid.UUID]:
        return sorted({record for record, _ in self.touched if record is not None})


# The statements both paths run: a session's (`run_once`) and the hot path's (`run_once_async`).
_STORED = Statement.compile(
    "SELECT fingerprint, status_code, body, location, erased_at, patient_ids FROM idempotency_keys"
    " WHERE scope = :scope AND key = :key"
)
_CLAIM = Statement.compile(
    "INSERT INTO idempotency_keys (scope, key, fingerprint) VALUES (:scope, :key, :fingerprint)"
    " ON CONFLICT DO NOTHING RETURNING key"
)
_ANSWER = Statement.compile(
    "UPDATE idempotency_keys SET status_code = :status, body = :body, location = :location,"
    " patient_ids = :patients, record_ids = :records WHERE scope = :scope AND key = :key"
)


def run_once(
    *, session: Session, access: Access, key: str | None, scope: str, request: BaseModel, write: Callable[[], Outcome]
) -> Answer:
    """Run `write` unless this caller's key already did; either way answer what the first run
    answered, and audit it. The same statements as `run_once_async`, in `session`'s transaction."""
    if key is None:
        outcome = write()
        access.record(session, outcome.status_code, outcome.touched)
        return Answer(outcome.body.model_dump_json(), outcome.status_code, outcome.location)
    scope, fingerprint = access.idempotency_scope(scope), fingerprint_of(request)
    if _CLAIM.one_sync(session, {"scope": scope, "key": key, "fingerprint": fingerprint}) is None:
        stored = _STORED.one_sync(session, {"scope": scope, "key": key})
        assert stored is not None  # claimed in a transaction that committed: it is there
        first = replayed(stored, fingerprint)
        access.record(session, stored["status_code"], [(None, patient) for patient in stored["patient_ids"]])
        return first
    outcome = write()
    answer = _answer_values(scope, key, outcome)
    _ANSWER.run_sync(session, answer)
    access.record(session, outcome.status_code, outcome.touched)
    return Answer(answer["body"], outcome.status_code, outcome.location)


def fingerprint_of(request: BaseModel) -> str:
    """What tells a retry from another request under the same key: a hash of the parsed body."""
    return hashlib.sha256(request.model_dump_json().encode()).hexdigest()


def _answer_values(scope: str, key: str, outcome: Outcome) -> dict[str, Any]:
    """`_ANSWER`'s values: the first answer, stored under the key to be replayed."""
    return {
        "scope": scope,
        "key": key,
        "status": outcome.status_code,
        "body": outcome.body.model_dump_json(),
        "location": outcome.location,
        "patients": outcome.patient_ids,
        "records": outcome.record_ids,
    }


def replayed(stored: Mapping[str, Any], fingerprint: str) -> Answer:
    """The first answer again, if this is the same request and neither what it stored nor its
    patient was deleted since."""
    if stored["fingerprint"] != fingerprint:
        raise Conflict("This Idempotency-Key was used with a different request body.")
    if stored["erased_at"] is not None:
        raise NotFound("What this request stored, or the patient it was about, has since been deleted.")
    return Answer(stored["body"], stored["status_code"], stored["location"], replayed=True)


# --- the async hot path (db/pg.py) ---------------------------------------------------------
async def stored_answer(conn: Connection, scope: str, key: str) -> Mapping[str, Any]:
    """The answer stored under a claimed key."""
    row = await _STORED.one(conn, {"scope": scope, "key": key})
    assert row is not None  # claimed in a transaction that committed: it is there
    return row


async def replay_async(conn: Connection, access: Access, stored: Mapping[str, Any], fingerprint: str) -> Answer:
    first = replayed(stored, fingerprint)
    await access.record_async(conn, stored["status_code"], [(None, patient) for patient in stored["patient_ids"]])
    return first


async def run_once_async(
    *,
    pool: Pool,
    access: Access,
    key: str | None,
    scope: str,
    request: BaseModel,
    write: Callable[[Connection], Awaitable[Outcome]],
) -> Answer:
    """`run_once` on the async path: claim, write, stored answer and audit in one transaction."""
    async with pg.connection(pool) as conn, conn.transaction():
        if key is None:
            outcome = await write(conn)
            if not outcome.audited:
                await access.record_async(conn, outcome.status_code, outcome.touched)
            return Answer(outcome.body.model_dump_json(), outcome.status_code, outcome.location)
        scope, fingerprint = access.idempotency_scope(scope), fingerprint_of(request)
        claim = {"scope": scope, "key": key, "fingerprint": fingerprint}
        if await _CLAIM.one(conn, claim) is None:
            return await replay_async(conn, access, await stored_answer(conn, scope, key), fingerprint)
        outcome = await write(conn)
        answer = _answer_values(scope, key, outcome)
        await _ANSWER.run(conn, answer)
        if not outcome.audited:
            await access.record_async(conn, outcome.status_code, outcome.touched)
        return Answer(answer["body"], outcome.status_code, outcome.location)


def erase_answers(session: Session, table: Table, patient_id: uuid.UUID, record_id: uuid.UUID | None = None) -> None:
    """Forget the stored answers about a deleted patient, or only those that report `record_id`
    (of that patient) as stored once it is deleted: they are never replayed again."""
    about = [table.c.patient_ids.contains([patient_id]), table.c.erased_at.is_(None)]  # the patient's GIN index
    if record_id is not None:
        about.append(table.c.record_ids.contains([record_id]))
    session.execute(update(table).where(*about).values(erased_at=func.now(), body=None, location=None))
