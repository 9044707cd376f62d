"""Risk: SpO2 scale per patient, risk assessments.

Revision ID: 20261126_03
Revises: 20261126_02
Create Date: 2026-11-26
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

# revision identifiers, used by Alembic.
revision: str = '20261126_03'
down_revision: str | Sequence[str] | None = '20261126_02'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table('risk_assessments',
    sa.Column('patient_id', sa.Uuid(), nullable=False),
    sa.Column('revision', sa.Integer(), nullable=False),
    sa.Column('news2_total', sa.SmallInteger(), nullable=True),
    sa.Column('band', sa.String(length=12), nullable=True),
    sa.Column('band_rank', sa.SmallInteger(), nullable=True),
    sa.Column('bp_category', sa.String(length=24), nullable=True),
    sa.Column('based_on', sa.DateTime(timezone=True), nullable=True),
    sa.Column('assessment', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.ForeignKeyConstraint(['patient_id'], ['patients.id'], name=op.f('risk_assessments_patient_id_fkey'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('patient_id', name=op.f('risk_assessments_pkey'))
    )
    op.create_index('ix_risk_assessments_ward_view', 'risk_assessments', ['band_rank', 'news2_total', 'patient_id'], unique=False)
    op.add_column('patients', sa.Column('spo2_scale', sa.SmallInteger(), server_default='1', nullable=False))
    op.create_check_constraint(op.f('patients_spo2_scale_known_check'), 'patients', 'spo2_scale IN (1, 2)')


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_constraint(op.f('patients_spo2_scale_known_check'), 'patients', type_='check')
    op.drop_column('patients', 'spo2_scale')
    op.drop_index('ix_risk_assessments_ward_view', table_name='risk_assessments')
    op.drop_table('risk_assessments')
