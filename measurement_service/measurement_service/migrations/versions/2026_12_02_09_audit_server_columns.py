"""The audit trail's row ids and times are the server's, never the runtime role's (doc/security.md).

Revision ID: 20261202_09
Revises: 20261127_08
Create Date: 2026-12-02
"""

from collections.abc import Sequence

from alembic import op

from painkiller_common.db.migrations import audit_server_columns_down, audit_server_columns_up

revision: str = "20261202_09"
down_revision: str | Sequence[str] | None = "20261127_08"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

RUNTIME_ROLE = "painkiller_measurement_runtime"  # as the security migration names it


def upgrade() -> None:
    for statement in audit_server_columns_up(RUNTIME_ROLE):
        op.execute(statement)


def downgrade() -> None:
    for statement in audit_server_columns_down(RUNTIME_ROLE):
        op.execute(statement)
