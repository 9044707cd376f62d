"""Webhook senders are woken when a delivery turns pending (LISTEN/NOTIFY) instead of polling for
one: made by a dispatcher's consumer or resent through the API (doc/alerts.md).

Revision ID: 20261202_14
Revises: 20261202_13
Create Date: 2026-12-02
"""

from collections.abc import Sequence

from alembic import op

revision: str = "20261202_14"
down_revision: str | Sequence[str] | None = "20261202_13"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Written out, not imported: a migration keeps meaning what it meant when it ran.
CHANNEL = "painkiller_webhook_deliveries"


def upgrade() -> None:
    op.execute(
        "CREATE FUNCTION notify_webhook_delivery() RETURNS trigger LANGUAGE plpgsql AS "
        f"$$ BEGIN PERFORM pg_notify('{CHANNEL}', ''); RETURN NULL; END $$"
    )
    # One notification per transaction however many rows (PostgreSQL folds identical ones).
    op.execute(
        "CREATE TRIGGER webhook_delivery_notify AFTER INSERT OR UPDATE OF state, next_attempt_at"
        " ON webhook_deliveries FOR EACH ROW WHEN (NEW.state = 'pending')"
        " EXECUTE FUNCTION notify_webhook_delivery()"
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER webhook_delivery_notify ON webhook_deliveries")
    op.execute("DROP FUNCTION notify_webhook_delivery()")
