"""The hot path's PostgreSQL: psycopg 3's async pool, and one statement per request where it can be.

The same driver as every other process (SQLAlchemy's engines run on psycopg 3 too), used directly
here because these routes send their own compiled statements (db/statements.py). Connections are
in autocommit: a single statement commits with its own round trip, and a transaction is asked for
where one is meant (`conn.transaction()`). Why no ping or reset per checkout: doc/performance.md.
A connection that died (PostgreSQL restarted) is found by the error of the statement that used it;
the pool drops it when it comes back, and the request answers 503 with Retry-After, never a 500
(http/problems.py maps psycopg's errors and SQLAlchemy's alike).
"""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

import psycopg
from fastapi import Depends, Request
from psycopg.rows import DictRow, dict_row
from psycopg_pool import AsyncConnectionPool
from sqlalchemy import Table
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import make_url

Row = dict[str, Any]
Connection = psycopg.AsyncConnection[DictRow]
Pool = AsyncConnectionPool[Connection]


def dsn(sqlalchemy_url: str) -> str:
    """The libpq URL psycopg takes, from the settings' SQLAlchemy URL."""
    return make_url(sqlalchemy_url).set(drivername="postgresql").render_as_string(hide_password=False)


async def init_connection(conn: Connection) -> None:
    """Run once on each new connection (the tests count statements from here)."""


async def open_pool(url: str, *, max_size: int, timeout_s: float) -> Pool:
    """Connections are opened on first use (min_size 0): the API starts while PostgreSQL is down.
    A request waits up to `timeout_s` for a connection, so a PostgreSQL restart shorter than that
    costs a wait rather than an error; past it, a 503."""
    pool = AsyncConnectionPool(
        dsn(url),
        connection_class=Connection,
        kwargs={
            "autocommit": True,
            "row_factory": dict_row,
            "connect_timeout": 5,
            "application_name": "painkiller-api",
            # No statement holds a connection past 30 s (it fails as the database being down: 503).
            "options": "-c timezone=UTC -c statement_timeout=30s",
        },
        min_size=0,
        max_size=max_size,
        timeout=timeout_s,
        configure=lambda conn: init_connection(conn),  # looked up each time: tests count statements
        open=False,
        name="painkiller-api",
    )
    await pool.open(wait=False)
    return pool


@asynccontextmanager
async def connection(pool: Pool) -> AsyncIterator[Connection]:
    """A connection of `pool`, given back as it is: nothing to reset (the API never changes session
    state: no SET, LISTEN, cursor or advisory lock), and nothing to commit (autocommit)."""
    conn = await pool.getconn()
    try:
        yield conn
    finally:
        await pool.putconn(conn)


async def get_pool(request: Request) -> Pool:
    pool: Pool = request.app.state.pool
    return pool


PoolDep = Annotated[Pool, Depends(get_pool)]


def column_types(table: Table) -> dict[str, str]:
    """Each column's PostgreSQL type, for casting `unnest()` arrays to the table's own types."""
    dialect = postgresql.dialect()
    return {column.name: column.type.compile(dialect=dialect) for column in table.columns}
