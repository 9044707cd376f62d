"""The hot path's PostgreSQL: an asyncpg pool, and one statement per request where it can be.

Why asyncpg, and why no ping or reset per checkout: doc/performance.md. A connection that died
(PostgreSQL restarted) is found by the error of the statement that used it: asyncpg drops it from
the pool, and the request answers 503 with Retry-After, never a 500 (`install_pg_handlers`).
"""

import json
from typing import Annotated

import asyncpg
from fastapi import Depends, FastAPI, Request
from sqlalchemy import Table
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import make_url

from painkiller_common.http.problems import on_database_down, on_unstorable_value

Pool = asyncpg.Pool
Connection = asyncpg.Connection
Record = asyncpg.Record

# What a dead or unreachable database looks like to asyncpg.
CONNECTION_ERRORS: tuple[type[Exception], ...] = (
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.TooManyConnectionsError,
    asyncpg.InterfaceError,
    # A statement on a connection the server has just closed (its FATAL read, its EOF not yet):
    # asyncpg refuses it in this state; the pool drops the connection when it is released.
    asyncpg.InternalClientError,
    ConnectionError,
    OSError,
    TimeoutError,
)


def dsn(sqlalchemy_url: str) -> str:
    """The libpq URL asyncpg takes, from the settings' SQLAlchemy URL."""
    return make_url(sqlalchemy_url).set(drivername="postgresql").render_as_string(hide_password=False)


async def init_connection(conn: asyncpg.Connection) -> None:
    # JSON columns as Python values, as psycopg2 gives them.
    for type_name in ("json", "jsonb"):
        await conn.set_type_codec(type_name, encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


async def _keep(conn: asyncpg.Connection) -> None:
    """Nothing to reset on release: the API never changes session state (no SET, LISTEN, cursor
    or advisory lock), and asyncpg's default reset would cost a round trip per request."""


async def open_pool(url: str, *, max_size: int) -> asyncpg.Pool:
    """Connections are opened on first use (min_size 0): the API starts while PostgreSQL is down,
    and answers 503 until it is back, as the SQLAlchemy engine does."""
    pool = await asyncpg.create_pool(
        dsn(url),
        min_size=0,
        max_size=max_size,
        init=lambda conn: init_connection(conn),  # looked up each time: tests count statements
        reset=_keep,
        timeout=5,
        command_timeout=30,
        server_settings={"application_name": "painkiller-api", "timezone": "UTC"},
    )
    assert pool is not None
    return pool


async def get_pool(request: Request) -> asyncpg.Pool:
    pool: asyncpg.Pool = request.app.state.pool
    return pool


PoolDep = Annotated[asyncpg.Pool, Depends(get_pool)]


def column_types(table: Table) -> dict[str, str]:
    """Each column's PostgreSQL type, for casting `unnest()` arrays to the table's own types."""
    dialect = postgresql.dialect()
    return {column.name: column.type.compile(dialect=dialect) for column in table.columns}


def install_pg_handlers(app: FastAPI) -> None:
    """asyncpg's errors answered as psycopg2's are (painkiller_common.http.problems): 503 or 400."""
    for error in CONNECTION_ERRORS:
        app.add_exception_handler(error, on_database_down)
    for refused in (asyncpg.DataError, asyncpg.IntegrityConstraintViolationError):
        app.add_exception_handler(refused, on_unstorable_value)
