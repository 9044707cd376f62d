"""What is kept of HL7 messages over time (doc/hl7.md): held ones expire after the retention; a
deleted patient's messages go with them; an MRN the replica remembered is forgotten when the
patient changes."""

import asyncio
import dataclasses
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi.testclient import TestClient
from psycopg.rows import dict_row
from test_measurement_events import created, deleted, updated

from measurement_service.hl7 import store
from measurement_service.hl7.messages import Header
from painkiller_common.db import pg
from painkiller_testing.databases import DatabaseRoles

HEADER = Header("MON", "ICU", "PAINKILLER", "HOSP", "C-1", "ORU^R01", "R01", "2.6")
READING = {"spo2_percent": 97, "measured_at": "2026-12-01T08:00:00Z"}


def on(database: DatabaseRoles, work: Callable[[pg.Connection], Awaitable[Any]]) -> Any:
    """`work` on a connection of the runtime role, as the listener has."""

    async def run() -> Any:
        conn = await pg.Connection.connect(pg.dsn(database.runtime_url), autocommit=True, row_factory=dict_row)
        async with conn:
            return await work(conn)

    return asyncio.run(run())


def kept(control_id: str, state: str = "held", **fields: Any) -> store.Kept:
    header = dataclasses.replace(HEADER, control_id=control_id)
    return store.Kept(header, f"MSH|...|{control_id}", "127.0.0.1", state, "AA", mrn="MRN-1", **fields)


async def states(conn: pg.Connection) -> list[tuple[str, str]]:
    cursor = await conn.execute("SELECT control_id, state FROM hl7_messages ORDER BY control_id")
    return [(row["control_id"], row["state"]) for row in await cursor.fetchall()]


def test_held_messages_past_the_retention_expire_and_the_others_stay_held(
    client: TestClient, database: DatabaseRoles
) -> None:
    async def work(conn: pg.Connection) -> list[tuple[str, str]]:
        for control_id in ("NEW", "OLD"):
            await store.keep(conn, kept(control_id, readings=[READING]))
        await conn.execute("UPDATE hl7_messages SET received_at = now() - interval '31 days' WHERE control_id = 'OLD'")
        await store.expire(conn, 30)
        return await states(conn)

    assert on(database, work) == [("NEW", "held"), ("OLD", "expired")]


def test_a_deleted_patients_messages_are_erased_with_them(
    client: TestClient, consumer, database: DatabaseRoles, stored
) -> None:
    mine, other = uuid.uuid4(), uuid.uuid4()
    consumer.apply(created(mine))

    async def keep_both(conn: pg.Connection) -> None:
        await store.keep(conn, kept("MINE", "stored", patient_id=mine))
        await store.keep(conn, kept("OTHER", "stored", patient_id=other))

    on(database, keep_both)
    consumer.apply(deleted(mine, 2))
    assert on(database, states) == [("OTHER", "stored")]


def test_an_mrn_remembered_is_forgotten_when_the_patient_changes(
    client: TestClient, consumer, database: DatabaseRoles
) -> None:
    patient_id = uuid.uuid4()
    consumer.apply(created(patient_id))

    async def remember_and_look(conn: pg.Connection) -> uuid.UUID | None:
        await store.remember(conn, "MRN-1", patient_id)
        return (await store.look_up(conn, HEADER, "MRN-1")).patient_id

    assert on(database, remember_and_look) == patient_id
    consumer.apply(updated(patient_id, 2))  # the MRN may have changed: asked again next time

    async def look(conn: pg.Connection) -> uuid.UUID | None:
        return (await store.look_up(conn, HEADER, "MRN-1")).patient_id

    assert on(database, look) is None
