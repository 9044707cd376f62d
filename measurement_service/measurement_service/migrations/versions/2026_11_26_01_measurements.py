"""Measurements table.

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
    op.create_table('measurements',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('patient_id', sa.Uuid(), nullable=False),
    sa.Column('measured_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('recorded_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('temperature_c', sa.Double(), nullable=True),
    sa.Column('heart_rate_bpm', sa.SmallInteger(), nullable=True),
    sa.Column('respiratory_rate_bpm', sa.SmallInteger(), nullable=True),
    sa.Column('spo2_percent', sa.SmallInteger(), nullable=True),
    sa.Column('systolic_mmhg', sa.SmallInteger(), nullable=True),
    sa.Column('diastolic_mmhg', sa.SmallInteger(), nullable=True),
    sa.Column('weight_kg', sa.Double(), nullable=True),
    sa.Column('height_cm', sa.Double(), nullable=True),
    sa.Column('glucose_mg_dl', sa.Double(), nullable=True),
    sa.Column('on_oxygen', sa.Boolean(), nullable=True),
    sa.Column('consciousness', sa.String(length=12), nullable=True),
    sa.Column('source', sa.String(length=100), nullable=True),
    sa.CheckConstraint('(systolic_mmhg IS NULL) = (diastolic_mmhg IS NULL)', name=op.f('measurements_bp_pair_check')),
    sa.CheckConstraint('diastolic_mmhg < systolic_mmhg', name=op.f('measurements_bp_order_check')),
    sa.CheckConstraint('spo2_percent BETWEEN 0 AND 100', name=op.f('measurements_spo2_range_check')),
    sa.CheckConstraint('temperature_c BETWEEN 10 AND 50', name=op.f('measurements_temperature_range_check')),
    sa.PrimaryKeyConstraint('id', name=op.f('measurements_pkey'))
    )
    op.create_index('ix_measurements_patient_time', 'measurements', ['patient_id', 'measured_at', 'id'], unique=False)
    op.create_index('ix_measurements_time', 'measurements', ['measured_at', 'id'], unique=False)


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_index('ix_measurements_time', table_name='measurements')
    op.drop_index('ix_measurements_patient_time', table_name='measurements')
    op.drop_table('measurements')
