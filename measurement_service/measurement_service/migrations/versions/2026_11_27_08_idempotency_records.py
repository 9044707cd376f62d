"""A stored Idempotency-Key answer names the records it stored, so deleting one erases it (doc/events.md).

Revision ID: 20261127_08
Revises: 20261127_07
Create Date: 2026-11-27
"""

from collections.abc import Sequence

from alembic import op

from painkiller_common.db.migrations import IDEMPOTENCY_RECORDS_DOWN, IDEMPOTENCY_RECORDS_UP

revision: str = "20261127_08"
down_revision: str | Sequence[str] | None = "20261127_07"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    for statement in IDEMPOTENCY_RECORDS_UP:
        op.execute(statement)


def downgrade() -> None:
    for statement in IDEMPOTENCY_RECORDS_DOWN:
        op.execute(statement)
