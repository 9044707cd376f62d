"""Test helpers both services use: a real, freshly migrated test database, emptied per test."""

import json
import time
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, Table, create_engine, inspect, select, text
from sqlalchemy.exc import OperationalError

from painkiller_common.db import downgrade, ensure_database, upgrade


def migrate_fresh(migrations_dir: Path, url: str) -> None:
    """Run every migration down and up again, so each test run also tests the migrations."""
    ensure_database(url)
    downgrade(migrations_dir, url, "base")
    upgrade(migrations_dir, url, "head")


def truncate_all(url: str, attempts: int = 5) -> None:
    """Empty every table. Running consumers can deadlock with TRUNCATE; PostgreSQL then aborts
    one side, and if it is us we simply try again."""
    engine = create_engine(url)
    try:
        tables = [t for t in inspect(engine).get_table_names() if t != "alembic_version"]
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
        bodies = conn.execute(select(outbox.c.body).order_by(outbox.c.seq)).scalars()
        return [json.loads(body) for body in bodies]
