"""What a ward's board shows live: a row per change to a patient on a ward, written by a trigger
on `patients` whoever changes it, read by the ward's event stream (doc/ward.md).

Revision ID: 20261203_16
Revises: 20261203_15
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "20261203_16"
down_revision: str | Sequence[str] | None = "20261203_15"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

RUNTIME_ROLE = "painkiller_patient_runtime"  # as the security migration names it

# A deleted patient's earlier rows go with them. The ward a row leaves gets `left` (or `discharged`, `removed`); the ward it is on gets `arrived`
# when it came, else `reading` when its latest vitals changed, else `updated`. Written out, not
# imported: a migration keeps meaning what it meant when it ran.
NOTE_WARD_CHANGE = """
CREATE FUNCTION note_ward_change() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    old_ward text := CASE WHEN TG_OP <> 'INSERT' THEN OLD.location ->> 'ward' END;
    new_ward text := CASE WHEN TG_OP <> 'DELETE' THEN NEW.location ->> 'ward' END;
BEGIN
    IF TG_OP = 'DELETE' THEN  -- erased with the patient, but for the news that they are gone
        DELETE FROM ward_changes WHERE patient_id = OLD.id;
    END IF;
    IF old_ward IS NOT NULL AND old_ward IS DISTINCT FROM new_ward THEN
        INSERT INTO ward_changes (ward, patient_id, kind) VALUES (old_ward, OLD.id, CASE
            WHEN TG_OP = 'DELETE' THEN 'removed'
            WHEN NEW.discharged_at IS NOT NULL AND OLD.discharged_at IS NULL THEN 'discharged'
            ELSE 'left' END);
    END IF;
    IF new_ward IS NOT NULL THEN
        INSERT INTO ward_changes (ward, patient_id, kind) VALUES (new_ward, NEW.id, CASE
            WHEN old_ward IS DISTINCT FROM new_ward THEN 'arrived'
            WHEN NEW.latest_vitals IS DISTINCT FROM OLD.latest_vitals THEN 'reading'
            ELSE 'updated' END);
    END IF;
    RETURN NULL;
END $$
"""


def upgrade() -> None:
    op.create_table(
        "ward_changes",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("txid", sa.BigInteger(), server_default=sa.text("(pg_current_xact_id()::text::bigint)"),
                  nullable=False),  # fmt: skip
        sa.Column("ward", sa.String(length=50), nullable=False),
        sa.Column("patient_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("id", name="ward_changes_pkey"),
    )
    op.create_index("ix_ward_changes_ward", "ward_changes", ["ward", "txid", "id"])
    op.create_index("ix_ward_changes_at", "ward_changes", ["at"])
    op.execute(f"GRANT SELECT, INSERT, DELETE ON ward_changes TO {RUNTIME_ROLE}")
    op.execute(f"GRANT USAGE ON SEQUENCE ward_changes_id_seq TO {RUNTIME_ROLE}")
    op.execute(NOTE_WARD_CHANGE)
    op.execute(
        "CREATE TRIGGER patients_ward_change AFTER INSERT OR UPDATE OR DELETE ON patients"
        " FOR EACH ROW EXECUTE FUNCTION note_ward_change()"
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER patients_ward_change ON patients")
    op.execute("DROP FUNCTION note_ward_change()")
    op.drop_index("ix_ward_changes_at", table_name="ward_changes")
    op.drop_index("ix_ward_changes_ward", table_name="ward_changes")
    op.drop_table("ward_changes")
