"""A ward's stream without NGINX (tests/e2e/test_ward_stream.py has it end to end): its end when
the database goes away, and its event text."""

import asyncio
import uuid

from painkiller_common.db import pg
from patient_service.patients import ward_stream
from patient_service.patients.ward_stream import Position


def test_a_stream_ends_cleanly_when_the_database_is_unreachable() -> None:
    async def read() -> list[str]:
        pool = await pg.open_pool("postgresql://nobody@127.0.0.1:1/none", max_size=1, timeout_s=0.5)
        try:
            stream = ward_stream.events(pool, "4B", Position(0, 0), poll_s=0.01, heartbeat_s=10)
            return [chunk async for chunk in stream]
        finally:
            await pool.close()

    # Only the reconnection delay, then the end: the board reconnects with its Last-Event-ID.
    assert asyncio.run(asyncio.wait_for(read(), timeout=10)) == ["retry: 2000\n\n"]


def test_an_event_names_its_position_kind_and_patient_only() -> None:
    patient = uuid.UUID("3f2c1a9e-6b1d-4a8e-9c55-0b7e2d4f1a10")
    text = ward_stream.event(Position(8123, 77), patient, "reading")
    assert text == f'id: 8123.77\nevent: reading\ndata: {{"patient_id": "{patient}", "kind": "reading"}}\n\n'
    assert Position.parse("8123.77") == Position(8123, 77)
