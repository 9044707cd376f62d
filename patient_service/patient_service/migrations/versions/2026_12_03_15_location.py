"""Where a patient lies (ward, room, bed) and when they were discharged: set by PATCH and by HL7
ADT messages (doc/hl7.md).

Revision ID: 20261203_15
Revises: 20261202_14
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "20261203_15"
down_revision: str | Sequence[str] | None = "20261202_14"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("patients", sa.Column("location", postgresql.JSONB(astext_type=sa.Text()), nullable=True))
    op.add_column("patients", sa.Column("discharged_at", sa.DateTime(timezone=True), nullable=True))
    op.create_index("ix_patients_ward", "patients", [sa.text("(location ->> 'ward')"), "created_at", "id"])


def downgrade() -> None:
    op.drop_index("ix_patients_ward", table_name="patients")
    op.drop_column("patients", "discharged_at")
    op.drop_column("patients", "location")
