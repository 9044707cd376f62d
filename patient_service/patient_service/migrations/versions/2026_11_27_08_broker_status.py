"""The relay keeps its broker connection's state in the database, for the API's readiness (doc/operations.md).

Revision ID: 20261127_08
Revises: 20261127_07
Create Date: 2026-11-27
"""

from collections.abc import Sequence

from alembic import op

from painkiller_common.db.migrations import BROKER_STATUS_DOWN, broker_status_up

revision: str = "20261127_08"
down_revision: str | Sequence[str] | None = "20261127_07"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

RUNTIME_ROLE = "painkiller_patient_runtime"  # as the security migration names it


def upgrade() -> None:
    for statement in broker_status_up(RUNTIME_ROLE):
        op.execute(statement)


def downgrade() -> None:
    for statement in BROKER_STATUS_DOWN:
        op.execute(statement)
