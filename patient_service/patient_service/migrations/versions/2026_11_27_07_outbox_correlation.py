"""The outbox keeps the request id and traceparent of the change, for the relay to pass on (doc/operations.md).

Revision ID: 20261127_07
Revises: 20261127_06
Create Date: 2026-11-27
"""

from collections.abc import Sequence

from alembic import op

from painkiller_common.db.migrations import OUTBOX_CORRELATION_DOWN, OUTBOX_CORRELATION_UP

revision: str = "20261127_07"
down_revision: str | Sequence[str] | None = "20261127_06"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    for statement in OUTBOX_CORRELATION_UP:
        op.execute(statement)


def downgrade() -> None:
    for statement in OUTBOX_CORRELATION_DOWN:
        op.execute(statement)
