"""The vital-sign table (painkiller_common.vital_signs) is the one place each fact is written: what
the contract, the tables, FHIR and NEWS2 do agrees with it."""

import typing

import pytest
from sqlalchemy import Double, SmallInteger, Table

from measurement_service.models import Measurement
from painkiller_common.contracts import VITALS, MeasurementRecord
from painkiller_common.fhir.vitals import VITALS as FHIR_VITALS
from painkiller_common.vital_signs import SIGNS, VitalSign
from patient_service.models import VitalReading
from patient_service.risk.scores import (
    score_pulse,
    score_respiration,
    score_spo2_scale1,
    score_systolic,
    score_temperature,
)

TABLES: list[Table] = [Measurement.metadata.tables["measurements"], VitalReading.metadata.tables["vital_readings"]]
SCORED = {
    "respiratory_rate_bpm": score_respiration,
    "spo2_percent": score_spo2_scale1,
    "systolic_mmhg": score_systolic,
    "heart_rate_bpm": score_pulse,
    "temperature_c": score_temperature,
}


def test_every_numeric_vital_of_a_reading_has_its_row_in_that_order() -> None:
    assert list(SIGNS) == [field for field in VITALS if field not in ("on_oxygen", "consciousness")]


@pytest.mark.parametrize("sign", SIGNS.values(), ids=list(SIGNS))
def test_the_contract_and_both_tables_type_a_vital_as_its_row_does(sign: VitalSign) -> None:
    annotated = typing.get_args(MeasurementRecord.model_fields[sign.field].annotation)[0]  # of `X | None`
    assert typing.get_args(annotated)[0] is sign.type
    column_type = SmallInteger if sign.type is int else Double
    for table in TABLES:
        assert isinstance(table.c[sign.field].type, column_type), (table.name, sign.field)


def test_codes_name_one_vital_each() -> None:
    mdc = [code for sign in SIGNS.values() for code in sign.mdc]
    assert len(mdc) == len(set(mdc))
    assert len({sign.loinc for sign in SIGNS.values()}) == len(SIGNS)


def test_fhir_codes_units_and_normal_ranges_are_the_rows() -> None:
    quantities = [quantity for vital in FHIR_VITALS for quantity in vital.quantities]
    assert sorted(q.field for q in quantities) == sorted(SIGNS)
    for quantity in quantities:
        sign = SIGNS[quantity.field]
        assert (quantity.code, quantity.unit, quantity.normal) == (sign.loinc, sign.unit, sign.normal)


@pytest.mark.parametrize("field", list(SCORED))
def test_fhir_flags_normal_exactly_where_news2_scores_zero(field: str) -> None:
    """The FHIR interpretation's normal range is NEWS2's zero band: the same fact, read once."""
    sign, score = SIGNS[field], SCORED[field]
    assert sign.normal is not None
    low, high = sign.normal
    step = sign.resolution
    assert score(low) == 0 and score(high) == 0
    assert low - step < sign.low or score(round(low - step, 6)) > 0
    assert high + step > sign.high or score(round(high + step, 6)) > 0


def test_bands_read_to_a_decimal_have_whole_bounds() -> None:
    """news2_score compares a Decimal with the bounds as floats: exact only for whole numbers."""
    for sign in SIGNS.values():
        if sign.resolution != 1:
            assert all(float(up_to).is_integer() for up_to, _ in sign.news2[:-1]), sign.field
