"""The copy of readings refuses a vital outside its range, whoever writes: the consumer's
validation is not the only guard."""

import uuid
from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from painkiller_testing.databases import DatabaseRoles, refusing_constraint
from painkiller_testing.vitals import outside_ranges, with_its_pair


@pytest.mark.parametrize(("vital", "value"), outside_ranges())
def test_a_vital_outside_its_range_is_refused_by_the_database(
    database: DatabaseRoles, make_patient: Callable[..., dict], stored, vital: str, value: float
) -> None:
    row = {"measurement_id": uuid.uuid4(), "patient_id": make_patient()["id"], "measured_at": datetime.now(UTC)}
    refused_by = refusing_constraint(database.runtime_url, "vital_readings", {**row, **with_its_pair(vital, value)})
    assert refused_by == f"vital_readings_{vital}_range_check"
    assert stored("vital_readings") == 0
