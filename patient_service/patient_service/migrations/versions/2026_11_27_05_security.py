"""Least privilege and audit: the runtime role's rights, the audit trail, erasable idempotent answers.

The API, relay and consumer connect as a login role that is a member of painkiller_patient_runtime; the
migrations run as the database owner. The runtime role may read and write the service's tables
but not change their shape, and may only INSERT and SELECT the audit trail (doc/security.md).

Revision ID: 20261127_05
Revises: 20261126_04
Create Date: 2026-11-27
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "20261127_05"
down_revision: str | Sequence[str] | None = "20261126_04"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

RUNTIME = "painkiller_patient_runtime"


def upgrade() -> None:
    op.create_table(
        "audit_events",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), server_default=sa.text("clock_timestamp()"), nullable=False),
        sa.Column("actor", sa.String(length=255), nullable=False),
        sa.Column("client_id", sa.String(length=255), nullable=True),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("resource_type", sa.String(length=32), nullable=False),
        sa.Column("resource_id", sa.Uuid(), nullable=True),
        sa.Column("patient_id", sa.Uuid(), nullable=True),
        sa.Column("status", sa.SmallInteger(), nullable=False),
        sa.Column("request_id", sa.String(length=64), nullable=True),
        sa.Column("client_address", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("audit_events_pkey")),
    )
    op.create_index("ix_audit_events_patient_id", "audit_events", ["patient_id", "id"], unique=False)
    op.add_column(
        "idempotency_keys",
        sa.Column("patient_ids", postgresql.ARRAY(sa.Uuid()), server_default="{}", nullable=False),
    )
    op.add_column("idempotency_keys", sa.Column("erased_at", sa.DateTime(timezone=True), nullable=True))
    op.create_index(
        "ix_idempotency_keys_patient_ids", "idempotency_keys", ["patient_ids"], postgresql_using="gin"
    )
    op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {RUNTIME}")
    op.execute(f"GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO {RUNTIME}")
    op.execute(f"REVOKE UPDATE, DELETE, TRUNCATE ON audit_events FROM {RUNTIME}")
    op.execute(f"REVOKE ALL ON alembic_version FROM {RUNTIME}")


def downgrade() -> None:
    op.execute(f"REVOKE ALL ON ALL TABLES IN SCHEMA public FROM {RUNTIME}")
    op.execute(f"REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM {RUNTIME}")
    op.drop_index("ix_idempotency_keys_patient_ids", table_name="idempotency_keys")
    op.drop_column("idempotency_keys", "erased_at")
    op.drop_column("idempotency_keys", "patient_ids")
    op.drop_index("ix_audit_events_patient_id", table_name="audit_events")
    op.drop_table("audit_events")
