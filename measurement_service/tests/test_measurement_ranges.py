"""The database refuses a vital outside its range, whoever writes: the API is not the only guard."""

import uuid
from datetime import UTC, datetime

import pytest

from painkiller_common.settings import ServiceSettings
from painkiller_testing.databases import DatabaseRoles, refusing_constraint
from painkiller_testing.vitals import outside_ranges, with_its_pair


@pytest.mark.parametrize(("vital", "value"), outside_ranges())
def test_a_vital_outside_its_range_is_refused_by_the_database(
    database: DatabaseRoles, settings: ServiceSettings, stored, vital: str, value: float
) -> None:
    now = datetime.now(UTC)
    row = {"id": uuid.uuid4(), "patient_id": uuid.uuid4(), "measured_at": now, "recorded_at": now}
    refused_by = refusing_constraint(database.runtime_url, "measurements", {**row, **with_its_pair(vital, value)})
    assert refused_by == f"measurements_{vital}_range_check"
    assert stored("measurements") == 0
