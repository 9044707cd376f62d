"""A ward's changes as server-sent events, for its board (doc/ward.md).

A trigger on `patients` writes a `ward_changes` row in the transaction of every change to a patient
on a ward (a reading applied, an admission, a move, a discharge, an edit), whoever makes it, so
every replica of the API reads the same rows. An event carries the patient's id and what happened,
never a name: the board reads the patient itself, through the audited API.

Order and resumption: an event's id is its transaction's id and its row's (`txid.id`). A stream
only sends rows of transactions older than every one still running (`pg_snapshot_xmin`): a row
committed late can then never fall behind a position already sent, and `Last-Event-ID` resumes
without a gap or a repeat. (A transaction left open holds the stream back until it ends.)
"""

import asyncio
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import psycopg
from psycopg_pool import PoolTimeout

from painkiller_common.db import pg
from painkiller_common.db.pg import Pool
from painkiller_common.db.statements import Statement

logger = logging.getLogger(__name__)

# Every transaction that wrote a row older than this snapshot's oldest running one has ended.
_HORIZON = "pg_snapshot_xmin(pg_current_snapshot())::text::bigint"
START = Statement.compile(f"SELECT {_HORIZON} AS txid")
CHANGES = Statement.compile(
    "SELECT txid, id, patient_id, kind FROM ward_changes WHERE ward = :ward AND (txid, id) > (:txid, :id)"
    f" AND txid < {_HORIZON} ORDER BY txid, id LIMIT 200"
)
PRUNE = Statement.compile("DELETE FROM ward_changes WHERE at < now() - make_interval(hours => :hours)")
RETENTION_HOURS = 24  # how far back a board may resume; older rows are pruned
PRUNE_EVERY_S = 600
LAST_EVENT_ID = r"^\d{1,19}\.\d{1,19}$"


@dataclass(frozen=True)
class Position:
    txid: int
    id: int

    @classmethod
    def parse(cls, last_event_id: str) -> "Position":
        txid, row = last_event_id.split(".")
        return cls(int(txid), int(row))

    def __str__(self) -> str:
        return f"{self.txid}.{self.id}"


async def start(pool: Pool, last_event_id: str | None) -> Position:
    """Where a stream starts: after `Last-Event-ID`, else at what commits from now on."""
    if last_event_id:
        return Position.parse(last_event_id)
    async with pg.connection(pool) as conn:
        row = await START.one(conn, {})
    assert row is not None  # a SELECT of one value: one row
    return Position(int(row["txid"]), 0)


async def events(pool: Pool, ward: str, position: Position, *, poll_s: float, heartbeat_s: float) -> AsyncIterator[str]:
    """The stream's text: a reconnection delay, then each change as it commits, and a comment
    line when nothing happened for `heartbeat_s` (proxies and the browser see a live stream)."""
    yield "retry: 2000\n\n"
    quiet_since, pruned_at = time.monotonic(), time.monotonic() - PRUNE_EVERY_S  # prune on the first turn
    while True:
        try:
            async with pg.connection(pool) as conn:
                rows = await CHANGES.all(conn, {"ward": ward, "txid": position.txid, "id": position.id})
                if time.monotonic() - pruned_at >= PRUNE_EVERY_S:
                    await PRUNE.run(conn, {"hours": RETENTION_HOURS})
                    pruned_at = time.monotonic()
        except (psycopg.Error, PoolTimeout) as exc:
            # The stream ends; the board says "not live" and comes back with Last-Event-ID.
            logger.warning("a ward's stream ended: the database is unavailable (%s)", type(exc).__name__)
            return
        for row in rows:
            position = Position(row["txid"], row["id"])
            yield event(position, row["patient_id"], row["kind"])
        if rows:
            quiet_since = time.monotonic()
        elif time.monotonic() - quiet_since >= heartbeat_s:
            yield ": heartbeat\n\n"
            quiet_since = time.monotonic()
        await asyncio.sleep(poll_s)


def event(position: Position, patient_id: uuid.UUID, kind: str) -> str:
    data = json.dumps({"patient_id": str(patient_id), "kind": kind})
    return f"id: {position}\nevent: {kind}\ndata: {data}\n\n"
