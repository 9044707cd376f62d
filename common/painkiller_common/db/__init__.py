"""Engine, per-request session, database creation and migrations."""

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import psycopg
from alembic import command
from alembic.config import Config
from fastapi import Depends, Request
from psycopg import sql
from sqlalchemy import Connection, Engine, Table, create_engine, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.orm import sessionmaker

from painkiller_common.db.outbox import UnitOfWork


def make_engine(url: str, *, pool_size: int = 10, max_overflow: int = 10) -> Engine:
    return create_engine(
        url,
        pool_size=pool_size,
        max_overflow=max_overflow,
        pool_pre_ping=True,  # a restarted PostgreSQL must not cost the next request a 500
        hide_parameters=True,  # errors and logs must not carry the values: they are patient data
        connect_args={"connect_timeout": 5},
    )


def database_unavailable(exc: BaseException) -> bool:
    """Whether `exc` says the database is gone for now (down, restarting, recovering, our
    connection terminated or cut), rather than that the statement itself was refused: the first
    calls for waiting and trying again, the second for giving the work up."""
    return isinstance(exc, OperationalError | InterfaceError) or (
        isinstance(exc, DBAPIError) and exc.connection_invalidated
    )


def make_session_factory(engine: Engine, outbox: Table) -> sessionmaker[UnitOfWork]:
    """Sessions that are units of work: the events they record reach `outbox` on commit."""
    return sessionmaker(engine, class_=UnitOfWork, expire_on_commit=False, outbox=outbox)


def get_session(request: Request) -> Iterator[UnitOfWork]:
    """The one place that owns a request's transaction: commit if the handler returned.

    Use it with `Depends(get_session, scope="function")` so the commit happens before the
    response is sent: a client must never see a 2xx for a write that then failed to commit.
    """
    with request.app.state.session_factory() as session, session.begin():
        yield session


# A route's unit of work; `scope="function"` commits before the response is sent.
SessionDep = Annotated[UnitOfWork, Depends(get_session, scope="function")]


def ensure_database(url: str) -> bool:
    """Create the database named in `url` if it does not exist; True when it was created."""
    target = make_url(url)
    admin = create_engine(target.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            exists = conn.execute(
                text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": target.database}
            ).scalar()
            if not exists:
                conn.execute(text(f'CREATE DATABASE "{target.database}"'))
            return not exists
    finally:
        admin.dispose()


_ROLE_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")


def _identifier(name: str | None) -> str:
    if name is None or not _ROLE_NAME.fullmatch(name):
        raise ValueError(f"{name!r} is not a role name we create (lower case letters, digits, _)")
    return f'"{name}"'


def _ensure_role(conn: Connection, name: str | None, password: str | None, *, login: bool) -> str:
    role = _identifier(name)
    if not conn.execute(text("SELECT 1 FROM pg_roles WHERE rolname = :n"), {"n": name}).scalar():
        conn.execute(text(f"CREATE ROLE {role} {'LOGIN' if login else 'NOLOGIN'}"))
    # Never a superuser, never able to make roles or databases, whatever it was before.
    conn.execute(text(f"ALTER ROLE {role} NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS"))
    if password:
        # A utility statement takes no bound parameter: psycopg quotes the password itself.
        driver = conn.connection.driver_connection
        assert isinstance(driver, psycopg.Connection)
        driver.execute(sql.SQL("ALTER ROLE {} PASSWORD {}").format(sql.SQL(role), password))
    return role


def provision(*, admin_url: str, owner_url: str, runtime_url: str, runtime_role: str) -> None:
    """As a superuser: the owner role (runs migrations, owns the database), the runtime group
    role the migrations grant rights to, the runtime login role in it, and the database.

    Role names and passwords are those of `owner_url` and `runtime_url`. Only the runtime group may
    connect besides the owner. Objects an earlier setup made as another role are handed over
    to the owner, so that its migrations can change them.
    """
    owner, runtime = make_url(owner_url), make_url(runtime_url)
    database = _identifier(owner.database)
    admin = create_engine(make_url(admin_url).set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            owner_role = _ensure_role(conn, owner.username, owner.password, login=True)
            group = _ensure_role(conn, runtime_role, None, login=False)
            login = _ensure_role(conn, runtime.username, runtime.password, login=True)
            conn.execute(text(f"GRANT {group} TO {login}"))
            if not conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": owner.database}).scalar():
                conn.execute(text(f"CREATE DATABASE {database} OWNER {owner_role}"))
            conn.execute(text(f"ALTER DATABASE {database} OWNER TO {owner_role}"))
            conn.execute(text(f"REVOKE ALL ON DATABASE {database} FROM PUBLIC"))
            conn.execute(text(f"GRANT CONNECT ON DATABASE {database} TO {group}"))
        _hand_over(make_url(admin_url).set(database=owner.database), owner_role)
    finally:
        admin.dispose()


_NOT_OWNED = text(
    "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
    "WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'v', 'm') AND pg_get_userbyid(c.relowner) <> :owner"
)


def _hand_over(url: URL, owner_role: str) -> None:
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            # Read them all first: the loop runs statements of its own on this connection.
            tables: list[str] = list(conn.execute(_NOT_OWNED, {"owner": owner_role.strip('"')}).scalars())
            for table in tables:
                conn.execute(text(f'ALTER TABLE public."{table}" OWNER TO {owner_role}'))
    finally:
        engine.dispose()


def alembic_config(migrations_dir: Path, url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(migrations_dir))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(migrations_dir: Path, url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(migrations_dir, url), revision)


def downgrade(migrations_dir: Path, url: str, revision: str = "base") -> None:
    command.downgrade(alembic_config(migrations_dir, url), revision)
