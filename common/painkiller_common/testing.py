"""Test helpers both services use: a real, freshly migrated test database, emptied per test."""

from pathlib import Path

from sqlalchemy import create_engine, inspect, text

from painkiller_common.db import downgrade, ensure_database, upgrade


def migrate_fresh(migrations_dir: Path, url: str) -> None:
    """Run every migration down and up again, so each test run also tests the migrations."""
    ensure_database(url)
    downgrade(migrations_dir, url, "base")
    upgrade(migrations_dir, url, "head")


def truncate_all(url: str) -> None:
    engine = create_engine(url)
    try:
        tables = [t for t in inspect(engine).get_table_names() if t != "alembic_version"]
        if tables:
            with engine.begin() as conn:
                conn.execute(text("TRUNCATE " + ", ".join(f'"{t}"' for t in tables)))
    finally:
        engine.dispose()


def count_rows(url: str, table: str) -> int:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(text(f'SELECT count(*) FROM "{table}"')).scalar_one()
    finally:
        engine.dispose()
