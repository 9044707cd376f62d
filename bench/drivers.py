"""asyncpg against psycopg 3 on the hot path's shape of work: `python bench/drivers.py`.

Both drivers run the same two statements, prepared, from a pool, with 32 requests in flight on
one event loop (uvloop, as uvicorn runs it): a one-row insert that returns its row, and a read by
primary key. The figure that decides is the client's CPU per statement (the API process is where
the time goes, doc/performance.md); statements per second follow it on a shared machine.
"""

import argparse
import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import asyncpg
import psycopg
import psycopg_pool
import uvloop

ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
DSN = "postgresql://postgres@127.0.0.1:5432/bench_drivers"
INSERT = "INSERT INTO readings (id, patient_id, measured_at, heart_rate_bpm) VALUES ({}) RETURNING *"
SELECT = "SELECT * FROM readings WHERE id = {}"


async def prepare_database() -> None:
    admin = await asyncpg.connect(ADMIN)
    await admin.execute("DROP DATABASE IF EXISTS bench_drivers")
    await admin.execute("CREATE DATABASE bench_drivers")
    await admin.close()
    conn = await asyncpg.connect(DSN)
    await conn.execute(
        "CREATE TABLE readings (id uuid PRIMARY KEY, patient_id uuid, measured_at timestamptz, heart_rate_bpm int2)"
    )
    await conn.close()


async def drop_database() -> None:
    admin = await asyncpg.connect(ADMIN)
    await admin.execute("DROP DATABASE IF EXISTS bench_drivers WITH (FORCE)")
    await admin.close()


async def measure(name: str, op: Callable[[], Awaitable[object]], count: int, concurrency: int) -> None:
    async def worker(n: int) -> None:
        for _ in range(n):
            await op()

    await asyncio.gather(*(worker(20) for _ in range(concurrency)))  # warm: connections, prepares
    cpu, wall = time.process_time(), time.perf_counter()
    await asyncio.gather(*(worker(count // concurrency) for _ in range(concurrency)))
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    done = count // concurrency * concurrency
    print(f"  {name:<28} {done / wall:>8,.0f}/s   client CPU {cpu / done * 1e6:6.1f} µs per statement", flush=True)


async def run_asyncpg(count: int, concurrency: int) -> None:
    pool = await asyncpg.create_pool(DSN, min_size=concurrency, max_size=concurrency)
    insert, select = INSERT.format("$1, $2, $3, $4"), SELECT.format("$1")
    last: list[uuid.UUID] = [uuid.uuid4()]

    async def write() -> object:
        last[0] = uuid.uuid4()
        return await pool.fetchrow(insert, last[0], uuid.uuid4(), datetime.now(UTC), 72)

    await measure("asyncpg insert", write, count, concurrency)
    await measure("asyncpg select by key", lambda: pool.fetchrow(select, last[0]), count, concurrency)
    await pool.close()


async def run_psycopg(count: int, concurrency: int) -> None:
    pool = psycopg_pool.AsyncConnectionPool(
        DSN, min_size=concurrency, max_size=concurrency, kwargs={"autocommit": True, "prepare_threshold": 0}, open=False
    )
    await pool.open(wait=True)
    insert, select = INSERT.format("%s, %s, %s, %s"), SELECT.format("%s")
    last: list[uuid.UUID] = [uuid.uuid4()]

    async def fetchone(sql: str, *args: object) -> object:
        async with pool.connection() as conn:
            cursor = await conn.execute(sql, args)
            return await cursor.fetchone()

    async def write() -> object:
        last[0] = uuid.uuid4()
        return await fetchone(insert, last[0], uuid.uuid4(), datetime.now(UTC), 72)

    await measure("psycopg 3 insert", write, count, concurrency)
    await measure("psycopg 3 select by key", lambda: fetchone(select, last[0]), count, concurrency)
    await pool.close()


async def main(count: int, concurrency: int) -> None:
    await prepare_database()
    try:
        print(f"{count:,} statements each, {concurrency} in flight, asyncpg {asyncpg.__version__}, "
              f"psycopg {psycopg.__version__}:", flush=True)  # fmt: skip
        await run_asyncpg(count, concurrency)
        await run_psycopg(count, concurrency)
    finally:
        await drop_database()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()
    uvloop.run(main(args.count, args.concurrency))
