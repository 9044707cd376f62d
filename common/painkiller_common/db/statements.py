"""Statements for the hot routes written with named parameters (`:name`, as SQLAlchemy's `text()`
writes them), so the SQL reads as SQL and its arguments are given by name, not by position;
compiled once, and run in one call each.

A name is lower case (`:patient_id`); a cast (`::uuid`) and anything after a letter or digit (the
`HH24:MI` of a `to_char` format) is not a parameter. A `%` in the SQL (the modulo operator) is
sent as written.

Each is compiled twice: into PostgreSQL's own `$1` placeholders for the async pool, whose raw
cursor sends the SQL as it is, and into psycopg's `%(name)s` for a SQLAlchemy session. psycopg
parses a `%(name)s` statement on every call, and caches the parse only for statements up to 4 KB:
storing a reading (about 4.5 KB, its event's JSON built in SQL) cost the API 0.15 ms a request in
that parse alone.
"""

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from psycopg import AsyncRawCursor
from sqlalchemy.orm import Session

from painkiller_common.db.pg import Connection, Row

_NAMED = re.compile(r"(?<![:\w]):([a-z_][a-z0-9_]*)")


@dataclass(frozen=True)
class Statement:
    sql: str  # for a SQLAlchemy session, with `%(name)s` placeholders
    native: str  # for the async pool, with `$1` placeholders, numbered by `names`
    names: tuple[str, ...]  # its parameters, in first-use order

    @classmethod
    def compile(cls, named_sql: str) -> "Statement":
        names: list[str] = []

        def name_of(match: re.Match[str]) -> str:
            if match.group(1) not in names:
                names.append(match.group(1))
            return match.group(1)

        sql = _NAMED.sub(lambda match: f"%({name_of(match)})s", named_sql.replace("%", "%%"))
        native = _NAMED.sub(lambda match: f"${names.index(name_of(match)) + 1}", named_sql)
        return cls(sql, native, tuple(names))

    def args(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """The statement's own values; a KeyError names a parameter that was not given."""
        return {name: values[name] for name in self.names}

    def ordered(self, values: Mapping[str, Any]) -> list[Any]:
        """The statement's own values in `$n` order; a KeyError names a parameter not given."""
        return [values[name] for name in self.names]

    async def one(self, conn: Connection, values: Mapping[str, Any]) -> Row | None:
        """The first row the statement returns (None if none)."""
        async with AsyncRawCursor(conn) as cursor:
            await cursor.execute(self.native, self.ordered(values))
            return await cursor.fetchone()

    async def all(self, conn: Connection, values: Mapping[str, Any]) -> list[Row]:
        async with AsyncRawCursor(conn) as cursor:
            await cursor.execute(self.native, self.ordered(values))
            return await cursor.fetchall()

    async def run(self, conn: Connection, values: Mapping[str, Any]) -> None:
        async with AsyncRawCursor(conn) as cursor:
            await cursor.execute(self.native, self.ordered(values))

    # The same in a SQLAlchemy session's transaction: its engine is on the same driver, which takes
    # the compiled form as it is.
    def one_sync(self, session: Session, values: Mapping[str, Any]) -> Row | None:
        row = session.connection().exec_driver_sql(self.sql, self.args(values)).mappings().first()
        return None if row is None else dict(row)

    def all_sync(self, session: Session, values: Mapping[str, Any]) -> list[Row]:
        return [dict(row) for row in session.connection().exec_driver_sql(self.sql, self.args(values)).mappings()]

    def run_sync(self, session: Session, values: Mapping[str, Any]) -> None:
        session.connection().exec_driver_sql(self.sql, self.args(values))


def rows_json(rows: Sequence[object]) -> str:
    """A batch's rows as one JSON document, which its statement reads as a table
    (`json_populate_recordset`, `json_to_recordset`): one parameter whatever the batch's size, where
    arrays of values cost psycopg a regex per element to dump. UUIDs and times go as their text."""
    return json.dumps(rows, default=str)
