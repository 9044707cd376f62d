"""Name search: trigram indexes, so a part of a name is found without scanning every patient.

Revision ID: 20261126_04
Revises: 20261126_03
Create Date: 2026-11-26
"""

from collections.abc import Sequence

from alembic import op

revision: str = "20261126_04"
down_revision: str | Sequence[str] | None = "20261126_03"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # pg_trgm ships with PostgreSQL and is a trusted extension: the database owner may create it.
    op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    op.execute("CREATE INDEX ix_patients_first_name_trgm ON patients USING gin (first_name gin_trgm_ops)")
    op.execute("CREATE INDEX ix_patients_last_name_trgm ON patients USING gin (last_name gin_trgm_ops)")


def downgrade() -> None:
    op.execute("DROP INDEX ix_patients_last_name_trgm")
    op.execute("DROP INDEX ix_patients_first_name_trgm")
    # The extension stays: other objects may use it, and it costs nothing unused.
