"""The copy of readings refuses a vital outside its range, whoever writes: the consumer's
validation is not the only guard."""

import uuid
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import IntegrityError

from painkiller_common.testing import DatabaseRoles, outside_ranges, with_its_pair


@pytest.mark.parametrize(("vital", "value"), outside_ranges())
def test_a_vital_outside_its_range_is_refused_by_the_database(
    database: DatabaseRoles, make_patient: Callable[..., dict], stored, vital: str, value: float
) -> None:
    patient_id = make_patient()["id"]
    values = with_its_pair(vital, value)
    columns = ", ".join(values)
    row = {"id": uuid.uuid4(), "patient_id": patient_id, "at": datetime.now(UTC), **values}
    engine = create_engine(database.runtime_url)
    try:
        with pytest.raises(IntegrityError) as refused, engine.begin() as conn:
            conn.execute(
                text(
                    f"INSERT INTO vital_readings (measurement_id, patient_id, measured_at, {columns})"
                    f" VALUES (:id, :patient_id, :at, {', '.join(':' + c for c in values)})"
                ),  # fmt: skip
                row,
            )
    finally:
        engine.dispose()
    assert refused.value.orig.diag.constraint_name == f"vital_readings_{vital}_range_check"
    assert stored("vital_readings") == 0
