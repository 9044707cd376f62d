"""The body of every service's Alembic env.py: online migrations against the configured URL."""

from alembic import context
from sqlalchemy import MetaData, engine_from_config, pool, text

# Several `migrate` at once (init containers of pods starting together, doc/scaling.md) take
# turns: each holds this lock for its transaction, and the next finds the schema already new.
MIGRATION_LOCK = 7_355_608


def run_migrations(target_metadata: MetaData) -> None:
    config = context.config
    engine = engine_from_config(
        config.get_section(config.config_ini_section, {}), prefix="sqlalchemy.", poolclass=pool.NullPool
    )
    with engine.connect() as connection:
        context.configure(connection=connection, target_metadata=target_metadata, compare_type=True)
        with context.begin_transaction():
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
            context.run_migrations()
    engine.dispose()


NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "%(table_name)s_%(column_0_N_name)s_key",
    "ck": "%(table_name)s_%(constraint_name)s_check",
    "fk": "%(table_name)s_%(column_0_N_name)s_fkey",
    "pk": "%(table_name)s_pkey",
}


# Relays LISTEN on this channel; a statement-level trigger on the outbox NOTIFYs it, and PostgreSQL
# delivers the notification at commit, once per transaction however many rows it wrote.
OUTBOX_CHANNEL = "painkiller_outbox"
OUTBOX_NOTIFY_UP = [
    "CREATE FUNCTION notify_outbox() RETURNS trigger LANGUAGE plpgsql AS "
    f"$$ BEGIN PERFORM pg_notify('{OUTBOX_CHANNEL}', ''); RETURN NULL; END $$",
    "CREATE TRIGGER outbox_notify AFTER INSERT ON outbox FOR EACH STATEMENT EXECUTE FUNCTION notify_outbox()",
]
OUTBOX_NOTIFY_DOWN = ["DROP TRIGGER outbox_notify ON outbox", "DROP FUNCTION notify_outbox()"]

# The ids that follow an event from the request that caused it (logs.py): the relay copies them
# into the AMQP message's headers.
OUTBOX_CORRELATION_UP = [
    "ALTER TABLE outbox ADD COLUMN request_id varchar(64)",
    "ALTER TABLE outbox ADD COLUMN traceparent varchar(55)",
]
OUTBOX_CORRELATION_DOWN = ["ALTER TABLE outbox DROP COLUMN traceparent", "ALTER TABLE outbox DROP COLUMN request_id"]


def broker_status_up(runtime_role: str) -> list[str]:
    """One row: whether this service's relay is connected to the broker, as the relay last said.
    The API's readiness reads it, instead of opening a broker connection per call."""
    return [
        "CREATE TABLE broker_status (id smallint PRIMARY KEY DEFAULT 1 CHECK (id = 1),"
        " connected boolean NOT NULL, changed_at timestamptz NOT NULL, seen_at timestamptz NOT NULL)",
        f"GRANT SELECT, INSERT, UPDATE ON broker_status TO {runtime_role}",
    ]


BROKER_STATUS_DOWN = ["DROP TABLE broker_status"]

# The records a stored Idempotency-Key answer reports as stored (idempotency.py): deleting one
# erases the answer, so a retry gets 404 rather than a Location that is gone. Instant on
# PostgreSQL 11+: a constant default rewrites no row.
IDEMPOTENCY_RECORDS_UP = ["ALTER TABLE idempotency_keys ADD COLUMN record_ids uuid[] DEFAULT '{}' NOT NULL"]
IDEMPOTENCY_RECORDS_DOWN = ["ALTER TABLE idempotency_keys DROP COLUMN record_ids"]
