"""The copy of readings refuses every vital outside its range, as the API does (doc/api.md).

Revision ID: 20261202_13
Revises: 20261202_12
Create Date: 2026-12-02
"""

from collections.abc import Sequence

from alembic import op

revision: str = "20261202_13"
down_revision: str | Sequence[str] | None = "20261202_12"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Written out, not imported: a migration keeps meaning what it meant when it ran.
RANGES = {
    "temperature_c": (10, 50),
    "heart_rate_bpm": (0, 300),
    "respiratory_rate_bpm": (0, 70),
    "spo2_percent": (0, 100),
    "systolic_mmhg": (0, 400),
    "diastolic_mmhg": (0, 300),
    "weight_kg": (0.2, 700),
    "height_cm": (20, 300),
    "glucose_mg_dl": (1, 3000),
}


def upgrade() -> None:
    for name, (low, high) in RANGES.items():
        # NOT VALID, then VALIDATE: rows already stored are checked without blocking writes.
        op.execute(
            f"ALTER TABLE vital_readings ADD CONSTRAINT vital_readings_{name}_range_check"
            f" CHECK ({name} BETWEEN {low} AND {high}) NOT VALID"
        )
        op.execute(f"ALTER TABLE vital_readings VALIDATE CONSTRAINT vital_readings_{name}_range_check")


def downgrade() -> None:
    for name in RANGES:
        op.execute(f"ALTER TABLE vital_readings DROP CONSTRAINT vital_readings_{name}_range_check")
