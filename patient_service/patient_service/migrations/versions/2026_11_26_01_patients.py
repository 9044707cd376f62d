"""Patients table.

Revision ID: 20261126_01
Revises:
Create Date: 2026-11-26
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


# revision identifiers, used by Alembic.
revision: str = '20261126_01'
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table('patients',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('mrn', sa.String(length=64), nullable=True),
    sa.Column('first_name', sa.String(length=100), nullable=False),
    sa.Column('last_name', sa.String(length=100), nullable=False),
    sa.Column('birth_date', sa.Date(), nullable=True),
    sa.Column('age', sa.SmallInteger(), nullable=True),
    sa.Column('sex', sa.String(length=10), nullable=False),
    sa.Column('conditions', sa.ARRAY(sa.String(length=200)), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("sex IN ('male', 'female', 'other', 'unknown')", name=op.f('patients_sex_known_check')),
    sa.CheckConstraint('age IS NULL OR age BETWEEN 0 AND 150', name=op.f('patients_age_range_check')),
    sa.CheckConstraint('birth_date IS NOT NULL OR age IS NOT NULL', name=op.f('patients_age_or_birth_date_check')),
    sa.PrimaryKeyConstraint('id', name=op.f('patients_pkey')),
    sa.UniqueConstraint('mrn', name=op.f('patients_mrn_key'))
    )
    op.create_index('ix_patients_created_at_id', 'patients', ['created_at', 'id'], unique=False)


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_index('ix_patients_created_at_id', table_name='patients')
    op.drop_table('patients')
