"""Refusals without a valid token are counted per address and minute, not a row each (doc/security.md).

Revision ID: 20261202_10
Revises: 20261202_09
Create Date: 2026-12-02
"""

from collections.abc import Sequence

from alembic import op

from painkiller_common.db.migrations import REFUSED_REQUESTS_DOWN, refused_requests_up

revision: str = "20261202_10"
down_revision: str | Sequence[str] | None = "20261202_09"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

RUNTIME_ROLE = "painkiller_measurement_runtime"  # as the security migration names it


def upgrade() -> None:
    for statement in refused_requests_up(RUNTIME_ROLE):
        op.execute(statement)


def downgrade() -> None:
    for statement in REFUSED_REQUESTS_DOWN:
        op.execute(statement)
