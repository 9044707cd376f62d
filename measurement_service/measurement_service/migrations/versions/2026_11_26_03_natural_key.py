"""A device's reading is stored once: unique (patient, measured_at, source).

Revision ID: 20261126_03
Revises: 20261126_02
Create Date: 2026-11-26
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


# revision identifiers, used by Alembic.
revision: str = '20261126_03'
down_revision: str | Sequence[str] | None = '20261126_02'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""
    op.create_index('uq_measurements_natural_key', 'measurements', ['patient_id', 'measured_at', 'source'], unique=True, postgresql_where=sa.text('source IS NOT NULL'))


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_index('uq_measurements_natural_key', table_name='measurements', postgresql_where=sa.text('source IS NOT NULL'))
