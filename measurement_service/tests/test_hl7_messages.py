"""What an HL7 v2 message says, read without a socket or a database (doc/hl7.md): codes, units,
times, statuses, the rules of a reading, and the ACK's layout."""

from datetime import UTC, datetime, timedelta

import pytest

from measurement_service.hl7 import acks, messages
from measurement_service.hl7.codes import CODES, UNITS
from measurement_service.hl7.messages import Problem
from painkiller_common.vital_signs import SIGNS
from painkiller_testing.hl7 import adt, loinc, news2_set, pcd01

WHEN = "20261201091500+0100"
OBR_TIME = datetime(2026, 12, 1, 7, 0, tzinfo=UTC)  # OBR-7, which pcd01 writes in +01:00


def obx(code: str, value: str, unit: str, *, status: str = "F", kind: str = "NM", at: str = WHEN) -> str:
    return f"OBX|1|{kind}|{code}^name^MDC|1.1.1.1|{value}|{unit}|||||{status}|||{at}"


def reading_of(*segments: str) -> dict:
    [reading] = messages.observations(
        messages.parse(pcd01("C1", "M1", at=OBR_TIME, observations=list(segments)))
    ).readings
    return reading


def refusal(*segments: str) -> Problem:
    with pytest.raises(Problem) as refused:
        messages.observations(messages.parse(pcd01("C1", "M1", at=OBR_TIME, observations=list(segments))))
    return refused.value


def test_every_mdc_and_loinc_code_of_the_vital_sign_table_maps_to_its_field() -> None:
    for sign in SIGNS.values():
        assert {CODES[str(code)].field for code in sign.mdc} | {CODES[sign.loinc].field} == {sign.field}


@pytest.mark.parametrize(
    ("code", "value", "unit", "field", "expected"),
    [
        ("150456", "97", "262688", "spo2_percent", 97),
        ("147842", "71.6", "264864", "heart_rate_bpm", 72),
        ("151562", "19", "/min", "respiratory_rate_bpm", 19),
        ("150344", "98.6", "266560", "temperature_c", 37.0),
        ("150344", "36.6", "Cel", "temperature_c", 36.6),
        ("188736", "154", "[lb_av]", "weight_kg", 69.853225),
    ],
)
def test_values_are_converted_into_the_apis_units(code, value, unit, field, expected) -> None:
    assert reading_of(obx(code, value, unit))[field] == pytest.approx(expected)


def test_blood_pressure_in_kpa_becomes_mmhg() -> None:
    reading = reading_of(obx("150301", "16", "kPa"), obx("150302", "10.7", "265987"))
    assert (reading["systolic_mmhg"], reading["diastolic_mmhg"]) == (120, 80)


def test_device_rows_other_statuses_and_text_are_skipped() -> None:
    reading = reading_of(
        "OBX|1||69965^MDC_DEV_MON_PHYSIO_MULTI_PARAM_MDS^MDC|1.0.0.0|||||||X",
        obx("150456", "97", "%"),
        obx("147842", "200", "/min", status="P"),  # preliminary: not stored
        obx("147842", "fine", "/min", kind="ST"),
    )
    assert reading == {"measured_at": "2026-12-01T08:15:00Z", "spo2_percent": 97}


def test_the_ecg_heart_rate_wins_over_the_oximeters_pulse_rate() -> None:
    assert reading_of(obx("149530", "80", "/min"), obx("147842", "78", "/min"))["heart_rate_bpm"] == 78


def test_the_time_is_obx14_else_obr7_with_its_offset() -> None:
    assert reading_of(obx("150456", "97", "%", at=""))["measured_at"] == "2026-12-01T07:00:00Z"  # OBR-7
    at = "20261201081500.25-0500"
    assert reading_of(obx("150456", "97", "%", at=at))["measured_at"] == "2026-12-01T13:15:00.250000Z"


@pytest.mark.parametrize(
    ("segment", "where", "words"),
    [
        (obx("150456", "101", "%"), ("OBX", 1, 5), "spo2_percent"),
        (obx("150456", "ninety", "%"), ("OBX", 1, 5), "not a number"),
        (obx("150456", "97", "mm[Hg]"), ("OBX", 1, 6), "unit"),
        (obx("150456", "97", "%", at="202612030815"), ("OBX", 1, 14), "offset"),
        (obx("150456", "97", "%", at="20261303081500+0000"), ("OBX", 1, 14), "valid time"),
        (obx("150301", "120", "mm[Hg]"), ("OBX", 1, 5), "together"),
        (obx("160184", "5", "mmol/L", at=(datetime.now(UTC) + timedelta(hours=1)).strftime("%Y%m%d%H%M%S+0000")),
         ("OBX", 1, 5), "future"),
    ],
)  # fmt: skip
def test_content_the_api_refuses_is_ae_naming_segment_and_field(segment, where, words) -> None:
    problem = refusal(segment)
    assert (problem.ack, (problem.segment, problem.sequence, problem.position)) == ("AE", where)
    assert words in problem.text


def test_a_message_without_any_vital_is_ae() -> None:
    assert refusal(obx("999999", "1", "%")).ack == "AE"


def test_the_mrn_is_pid3s_identifier_typed_mr() -> None:
    message = pcd01("C1", "MRN-42").replace("MRN-42^^^HOSP^MR~990011^^^NHS^NH", "990011^^^NHS^NH~MRN-42^^^HOSP^MR")
    assert messages.observations(messages.parse(message)).mrn == "MRN-42"
    assert messages.observations(messages.parse(loinc("C2", "PLAIN-7"))).mrn == "PLAIN-7"


@pytest.mark.parametrize(
    ("change", "position"),
    [(("ORU^R01^ORU_R01", "ADT^A01^ADT_A01"), 9), (("|P|2.6|", "|P|2.7|"), 12), (("|C1|", "||"), 10)],
)
def test_what_is_never_taken_is_ar(change, position) -> None:
    header = messages.header_of(messages.parse(pcd01("C1", "M1").replace(*change)))
    with pytest.raises(Problem) as refused:
        messages.check(header, ("ORU^R01",))
    assert (refused.value.ack, refused.value.position) == ("AR", position)


def test_what_is_not_hl7_is_ar() -> None:
    with pytest.raises(Problem) as refused:
        messages.parse("GET / HTTP/1.1")
    assert refused.value.ack == "AR"


def test_an_ack_swaps_sender_and_receiver_and_names_the_message() -> None:
    header = messages.header_of(messages.parse(loinc("C-9", "M1")))
    problem = Problem("AE", "spo2_percent: too|high", "OBX", 2, 5, code=102)
    segments = [segment.split("|") for segment in acks.ack(header, "AE", problem).split("\r") if segment]
    msh, msa, err = segments
    assert msh[2:6] == ["PAINKILLER", "HOSP", "LEGACY", "WARD-7"]
    assert (msh[8], msh[11]) == ("ACK^R01^ACK", "2.3")
    assert msa == ["MSA", "AE", "C-9"]
    assert (err[2], err[3], err[4], err[8]) == (
        "OBX^2^5",
        "102^Data type error^HL70357",
        "E",
        "spo2_percent: too\\F\\high",
    )


def test_every_unit_table_is_for_a_unit_the_api_uses() -> None:
    assert set(UNITS) == {sign.unit for sign in SIGNS.values()}


def test_an_adt_message_says_who_the_patient_is_and_where_they_lie() -> None:
    message = messages.parse(adt("A03", "C1", "MRN-5", bed="ICU^3^B", discharged="20261201103000+0100"))
    assert messages.admission(message, "A03") == {
        "event": "A03", "mrn": "MRN-5", "last_name": "Lovelace", "first_name": "Ada", "birth_date": "1960-12-10",
        "sex": "female", "location": {"ward": "ICU", "room": "3", "bed": "B"}, "at": "2026-12-01T09:30:00+00:00",
    }  # fmt: skip


def test_an_adt_message_without_a_bed_or_birth_date_leaves_them_out() -> None:
    message = messages.parse(adt("A08", "C1", "MRN-5", bed="", born=""))
    assert "location" not in messages.admission(message, "A08")
    assert "birth_date" not in messages.admission(message, "A08")
    with pytest.raises(Problem) as refused:
        messages.admission(messages.parse(adt("A01", "C1", "MRN-5", born="1960")), "A01")
    assert (refused.value.segment, refused.value.position) == ("PID", 7)


def test_a_whole_news2_set_with_acvpu_and_oxygen() -> None:
    [reading] = messages.observations(messages.parse(news2_set("C1", "M1", at=OBR_TIME))).readings
    assert {name: value for name, value in reading.items() if name not in ("measured_at", "source")} == {
        "respiratory_rate_bpm": 22, "spo2_percent": 95, "on_oxygen": True, "systolic_mmhg": 108, "diastolic_mmhg": 70,
        "heart_rate_bpm": 104, "consciousness": "confusion", "temperature_c": 38.3,
    }  # fmt: skip


@pytest.mark.parametrize(
    ("segment", "field", "expected"),
    [
        ("OBX|1|CWE|67775-7^Level of responsiveness^LN||422768004^Unresponsive^SCT||||||F", "consciousness",
         "unresponsive"),
        ("OBX|1|ST|67775-7^Level of responsiveness^LN||a||||||F", "consciousness", "alert"),
        ("OBX|1|NM|3150-0^Inhaled oxygen concentration^LN||21|%|||||F", "on_oxygen", False),
        ("OBX|1|NM|3150-0^Inhaled oxygen concentration^LN||28|%|||||F", "on_oxygen", True),
        ("OBX|1|NM|3151-8^Inhaled oxygen flow rate^LN||0|L/min|||||F", "on_oxygen", False),
    ],
)  # fmt: skip
def test_consciousness_and_air_or_oxygen(segment, field, expected) -> None:
    assert reading_of(segment)[field] == expected


def test_a_level_that_is_not_acvpu_is_ae() -> None:
    problem = refusal("OBX|3|CWE|67775-7^Level of responsiveness^LN||X^Drowsy||||||F")
    assert (problem.ack, problem.segment, problem.sequence, problem.position) == ("AE", "OBX", 3, 5)
