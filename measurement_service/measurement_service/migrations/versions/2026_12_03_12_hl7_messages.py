"""HL7 v2 over MLLP: every message received kept with its ACK, and the MRN of each known patient,
by which HL7 names a patient (doc/hl7.md).

Revision ID: 20261203_12
Revises: 20261202_11
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "20261203_12"
down_revision: str | Sequence[str] | None = "20261202_11"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

RUNTIME_ROLE = "painkiller_measurement_runtime"  # as the security migration names it


def upgrade() -> None:
    # The MRNs the HL7 listener has looked up (patient events carry no MRN), forgotten on each
    # `patient.updated`, as the MRN may have changed.
    op.add_column("known_patients", sa.Column("mrn", sa.String(length=64), nullable=True))
    op.create_index("ix_known_patients_mrn", "known_patients", ["mrn"], postgresql_where=sa.text("mrn IS NOT NULL"))
    op.create_table(
        "hl7_messages",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("sending_application", sa.String(length=227), nullable=False),
        sa.Column("sending_facility", sa.String(length=227), nullable=False),
        sa.Column("control_id", sa.String(length=199), nullable=False),
        sa.Column("message_type", sa.String(length=15), nullable=False),
        sa.Column("sender_address", sa.String(length=64), nullable=True),
        sa.Column("mrn", sa.String(length=64), nullable=True),
        sa.Column("state", sa.String(length=12), nullable=False),
        sa.Column("ack_code", sa.String(length=2), nullable=False),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column("reading", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("patient_id", sa.Uuid(), nullable=True),
        sa.Column("measurement_id", sa.Uuid(), nullable=True),
        sa.Column("released_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("raw", sa.Text(), nullable=False),
        sa.CheckConstraint(
            "state IN ('stored', 'duplicate', 'held', 'released', 'expired', 'error', 'refused')",
            name=op.f("hl7_messages_state_check"),
        ),
        sa.CheckConstraint("ack_code IN ('AA', 'AE', 'AR')", name=op.f("hl7_messages_ack_code_check")),
        sa.PrimaryKeyConstraint("id", name=op.f("hl7_messages_pkey")),
    )
    op.create_index(
        "uq_hl7_messages_sender_control_id",
        "hl7_messages",
        ["sending_application", "sending_facility", "control_id"],
        unique=True,
        postgresql_where=sa.text("ack_code = 'AA'"),
    )
    op.create_index("ix_hl7_messages_held", "hl7_messages", ["mrn"], postgresql_where=sa.text("state = 'held'"))
    op.create_index("ix_hl7_messages_patient_id", "hl7_messages", ["patient_id"])
    op.create_index("ix_hl7_messages_received_at", "hl7_messages", ["received_at"])
    op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON hl7_messages TO {RUNTIME_ROLE}")


def downgrade() -> None:
    op.drop_table("hl7_messages")
    op.drop_index("ix_known_patients_mrn", table_name="known_patients")
    op.drop_column("known_patients", "mrn")
