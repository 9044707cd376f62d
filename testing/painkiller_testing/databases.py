"""The tests' databases: a real, freshly migrated test database per service, reached as each of
its roles and emptied per test, and what to look at in it."""

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, Table, create_engine, inspect, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError, OperationalError

from painkiller_common.db import downgrade, pg, provision, upgrade
from painkiller_common.security.auth import AuthSettings
from painkiller_testing.devauth import DEV_AUDIENCE, DEV_ISSUER, ensure_dev_key


@dataclass(frozen=True)
class DatabaseRoles:
    """One service's test database, reached as each of the three roles `make up` uses."""

    admin_url: str  # a superuser: provisions, and empties tables between tests
    owner_url: str  # runs the migrations
    runtime_url: str  # what the service itself connects as
    runtime_role: str

    @classmethod
    def of(cls, admin_url: str, service: str, runtime_role: str) -> "DatabaseRoles":
        url = make_url(admin_url)
        return cls(
            admin_url=admin_url,
            owner_url=url.set(username=f"painkiller_{service}_owner").render_as_string(hide_password=False),
            runtime_url=url.set(username=f"painkiller_{service}_app").render_as_string(hide_password=False),
            runtime_role=runtime_role,
        )

    def migrate_fresh(self, migrations_dir: Path) -> None:
        """Provision the roles, then every migration down and up again (so they are tested too)."""
        provision(
            admin_url=self.admin_url,
            owner_url=self.owner_url,
            runtime_url=self.runtime_url,
            runtime_role=self.runtime_role,
        )
        downgrade(migrations_dir, self.owner_url, "base")
        upgrade(migrations_dir, self.owner_url, "head")

    def settings_fields(self, auth_dir: Path) -> dict[str, Any]:
        """What every service's test settings share: its runtime role (as in production, so a
        missing grant fails in the tests), tokens from the dev key in `auth_dir`, and a broker
        for readiness only (no relay or consumer runs in these tests)."""
        return {
            "database_url": self.runtime_url,
            "migration_database_url": self.owner_url,
            "auth": dev_auth(auth_dir),
            "amqp_url": "amqp://guest:guest@127.0.0.1:5672/%2F",
        }


def dev_auth(directory: Path) -> AuthSettings:
    """Settings that trust the dev key in `directory` (made if missing); mint tokens with devauth.mint."""
    return AuthSettings(issuer=DEV_ISSUER, audience=DEV_AUDIENCE, jwks_file=str(ensure_dev_key(directory)))


def truncate_all(url: str, attempts: int = 5) -> None:
    """Empty every table. Running consumers can deadlock with TRUNCATE; PostgreSQL then aborts
    one side, and if it is us we simply try again. Tables are locked parents first, the order in
    which the services' own transactions take them (a delivery row, then its attempt), so a busy
    webhook sender makes TRUNCATE wait rather than deadlock."""
    engine = create_engine(url)
    try:
        ordered = inspect(engine).get_sorted_table_and_fkc_names()
        tables = [t for t, _ in ordered if t is not None and t != "alembic_version"]
        for attempt in range(attempts):
            try:
                with engine.begin() as conn:
                    conn.execute(text("TRUNCATE " + ", ".join(f'"{t}"' for t in tables)))
                return
            except OperationalError:
                if attempt == attempts - 1:
                    raise
                time.sleep(0.2)
    finally:
        engine.dispose()


def count_rows(url: str, table: str) -> int:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(text(f'SELECT count(*) FROM "{table}"')).scalar_one()
    finally:
        engine.dispose()


def outbox_events(engine: Engine, outbox: Table) -> list[dict[str, Any]]:
    """The events a service has written, oldest first, as consumers would receive them."""
    with engine.connect() as conn:
        bodies: list[str] = list(conn.execute(select(outbox.c.body).order_by(outbox.c.seq)).scalars())
        return [json.loads(body) for body in bodies]


class RoundTrips:
    """Counts the exchanges with PostgreSQL the apps' async pools make: each statement, BEGIN and
    COMMIT is one (psycopg waits on the server once for each).

    Install it before the app starts: pools opened from then on report every one here."""

    def __init__(self) -> None:
        self.statements: list[str] = []

    def install(self, setattr: Callable[[object, str, object], None]) -> "RoundTrips":
        original = pg.init_connection

        async def counting(conn: pg.Connection) -> None:
            await original(conn)
            wait = conn.wait

            async def counted(gen: Any, *args: Any, **kwargs: Any) -> Any:
                self.statements.append(getattr(gen, "__qualname__", "?"))
                return await wait(gen, *args, **kwargs)

            conn.wait = counted  # type: ignore[method-assign]  # this connection's own, gone with it

        setattr(pg, "init_connection", counting)  # monkeypatch.setattr: undone after the test
        return self

    def during(self, call: Callable[[], Any]) -> int:
        """How many statements `call` sent."""
        before = len(self.statements)
        call()
        return len(self.statements) - before


def refusing_constraint(url: str, table: str, row: dict[str, Any]) -> str | None:
    """The constraint that refuses inserting `row` into `table` as `url`'s role; None if stored."""
    columns = ", ".join(row)
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(text(f"INSERT INTO {table} ({columns}) VALUES ({', '.join(':' + c for c in row)})"), row)
    except IntegrityError as refused:
        return str(refused.orig.diag.constraint_name)  # type: ignore[union-attr]  # psycopg's error has diag
    finally:
        engine.dispose()
    return None
