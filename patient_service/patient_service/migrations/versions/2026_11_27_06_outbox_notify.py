"""Relays are woken at commit (LISTEN/NOTIFY) instead of polling the outbox (doc/performance.md).

Revision ID: 20261127_06
Revises: 20261127_05
Create Date: 2026-11-27
"""

from collections.abc import Sequence

from alembic import op

from painkiller_common.db.migrations import OUTBOX_NOTIFY_DOWN, OUTBOX_NOTIFY_UP

revision: str = "20261127_06"
down_revision: str | Sequence[str] | None = "20261127_05"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    for statement in OUTBOX_NOTIFY_UP:
        op.execute(statement)


def downgrade() -> None:
    for statement in OUTBOX_NOTIFY_DOWN:
        op.execute(statement)
