"""The database refuses every vital outside its range, as the API does, whoever writes (doc/api.md).

Revision ID: 20261202_11
Revises: 20261202_10
Create Date: 2026-12-02
"""

from collections.abc import Sequence

from alembic import op

revision: str = "20261202_11"
down_revision: str | Sequence[str] | None = "20261202_10"
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
# Two ranges were checked already, under shorter names.
EARLIER = {"temperature_c": "measurements_temperature_range_check", "spo2_percent": "measurements_spo2_range_check"}


def upgrade() -> None:
    for name, earlier in EARLIER.items():
        op.execute(f"ALTER TABLE measurements RENAME CONSTRAINT {earlier} TO measurements_{name}_range_check")
    for name, (low, high) in RANGES.items():
        if name not in EARLIER:
            # NOT VALID, then VALIDATE: rows already stored are checked without blocking writes.
            op.execute(
                f"ALTER TABLE measurements ADD CONSTRAINT measurements_{name}_range_check"
                f" CHECK ({name} BETWEEN {low} AND {high}) NOT VALID"
            )
            op.execute(f"ALTER TABLE measurements VALIDATE CONSTRAINT measurements_{name}_range_check")


def downgrade() -> None:
    for name in RANGES:
        if name not in EARLIER:
            op.execute(f"ALTER TABLE measurements DROP CONSTRAINT measurements_{name}_range_check")
    for name, earlier in EARLIER.items():
        op.execute(f"ALTER TABLE measurements RENAME CONSTRAINT measurements_{name}_range_check TO {earlier}")
