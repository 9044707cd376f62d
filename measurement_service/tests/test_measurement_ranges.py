"""The database refuses a vital outside its range, whoever writes: the API is not the only guard."""

import uuid
from datetime import UTC, datetime

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import IntegrityError

from painkiller_common.settings import ServiceSettings
from painkiller_common.testing import DatabaseRoles, outside_ranges, with_its_pair


@pytest.mark.parametrize(("vital", "value"), outside_ranges())
def test_a_vital_outside_its_range_is_refused_by_the_database(
    database: DatabaseRoles, settings: ServiceSettings, stored, vital: str, value: float
) -> None:
    values = with_its_pair(vital, value)
    columns = ", ".join(values)
    now = datetime.now(UTC)
    row = {"id": uuid.uuid4(), "patient_id": uuid.uuid4(), "at": now, **values}
    engine = create_engine(database.runtime_url)
    try:
        with pytest.raises(IntegrityError) as refused, engine.begin() as conn:
            conn.execute(
                text(
                    f"INSERT INTO measurements (id, patient_id, measured_at, recorded_at, {columns})"
                    f" VALUES (:id, :patient_id, :at, :at, {', '.join(':' + c for c in values)})"
                ),  # fmt: skip
                row,
            )
    finally:
        engine.dispose()
    assert refused.value.orig.diag.constraint_name == f"measurements_{vital}_range_check"
    assert stored("measurements") == 0
