"""Statements for the hot routes written with named parameters (`:name`, as SQLAlchemy's `text()`
writes them), compiled once into psycopg's `%(name)s` form, so the SQL reads as SQL and its
arguments are given by name, not by position; and run in one call each.

A name is lower case (`:patient_id`); a cast (`::uuid`) and anything after a letter or digit (the
`HH24:MI` of a `to_char` format) is not a parameter. A `%` in the SQL (the modulo operator) is
sent as written.
"""

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from painkiller_common.db.pg import Connection, Row

_NAMED = re.compile(r"(?<![:\w]):([a-z_][a-z0-9_]*)")


@dataclass(frozen=True)
class Statement:
    sql: str  # as sent, with `%(name)s` placeholders
    names: tuple[str, ...]  # its parameters, in first-use order

    @classmethod
    def compile(cls, named_sql: str) -> "Statement":
        names: list[str] = []

        def placeholder(match: re.Match[str]) -> str:
            if match.group(1) not in names:
                names.append(match.group(1))
            return f"%({match.group(1)})s"

        return cls(_NAMED.sub(placeholder, named_sql.replace("%", "%%")), tuple(names))

    def args(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """The statement's own values; a KeyError names a parameter that was not given."""
        return {name: values[name] for name in self.names}

    async def one(self, conn: Connection, values: Mapping[str, Any]) -> Row | None:
        """The first row the statement returns (None if none)."""
        cursor = await conn.execute(self.sql, self.args(values))
        return await cursor.fetchone()

    async def all(self, conn: Connection, values: Mapping[str, Any]) -> list[Row]:
        cursor = await conn.execute(self.sql, self.args(values))
        return await cursor.fetchall()

    async def run(self, conn: Connection, values: Mapping[str, Any]) -> None:
        await conn.execute(self.sql, self.args(values))

    # The same in a SQLAlchemy session's transaction: its engine is on the same driver, which takes
    # the compiled form as it is.
    def one_sync(self, session: Session, values: Mapping[str, Any]) -> Row | None:
        row = session.connection().exec_driver_sql(self.sql, self.args(values)).mappings().first()
        return None if row is None else dict(row)

    def run_sync(self, session: Session, values: Mapping[str, Any]) -> None:
        session.connection().exec_driver_sql(self.sql, self.args(values))
