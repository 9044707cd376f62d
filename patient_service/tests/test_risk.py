"""NEWS2, blood-pressure category and variability against hand-worked cases (doc/risk.md)."""

import itertools
from datetime import UTC, datetime, timedelta

import pytest

from patient_service.risk import scores as risk
from patient_service.risk.scores import Reading, assess

T0 = datetime(2026, 11, 1, 8, 0, tzinfo=UTC)
DAY = timedelta(hours=24)
WEEK = timedelta(days=7)


@pytest.mark.parametrize(
    "rate,score", [(0, 3), (8, 3), (9, 1), (11, 1), (12, 0), (20, 0), (21, 2), (24, 2), (25, 3), (70, 3)]
)
def test_respiration_rate_edges(rate: int, score: int) -> None:
    assert risk.score_respiration(rate) == score


@pytest.mark.parametrize("spo2,score", [(91, 3), (92, 2), (93, 2), (94, 1), (95, 1), (96, 0), (100, 0)])
def test_spo2_scale_1_edges(spo2: int, score: int) -> None:
    assert risk.score_spo2_scale1(spo2) == score


@pytest.mark.parametrize(
    "spo2,on_oxygen,score",
    [
        (83, False, 3),
        (84, False, 2),
        (85, True, 2),
        (86, False, 1),
        (87, True, 1),
        (88, True, 0),
        (92, True, 0),
        (93, False, 0),  # on air, 93% or more scores nothing on scale 2
        (100, False, 0),
        (93, True, 1),
        (94, True, 1),
        (95, True, 2),
        (96, True, 2),
        (97, True, 3),
        (100, True, 3),
    ],
)
def test_spo2_scale_2_edges_with_and_without_oxygen(spo2: int, on_oxygen: bool, score: int) -> None:
    assert risk.score_spo2_scale2(spo2, on_oxygen) == score


@pytest.mark.parametrize(
    "systolic,score", [(90, 3), (91, 2), (100, 2), (101, 1), (110, 1), (111, 0), (219, 0), (220, 3)]
)
def test_systolic_edges(systolic: int, score: int) -> None:
    assert risk.score_systolic(systolic) == score


@pytest.mark.parametrize(
    "pulse,score",
    [(40, 3), (41, 1), (50, 1), (51, 0), (90, 0), (91, 1), (110, 1), (111, 2), (130, 2), (131, 3)],
)
def test_pulse_edges(pulse: int, score: int) -> None:
    assert risk.score_pulse(pulse) == score


@pytest.mark.parametrize(
    "celsius,score",
    [
        (35.0, 3),
        (35.1, 1),
        (36.0, 1),
        (36.1, 0),
        (38.0, 0),
        (38.1, 1),
        (39.0, 1),
        (39.1, 2),
        (35.04, 3),  # read to one decimal, as on the chart
        (38.05, 1),
    ],
)
def test_temperature_edges(celsius: float, score: int) -> None:
    assert risk.score_temperature(celsius) == score


@pytest.mark.parametrize(
    "level,score", [("alert", 0), ("confusion", 3), ("voice", 3), ("pain", 3), ("unresponsive", 3)]
)
def test_consciousness(level: str, score: int) -> None:
    assert risk.score_consciousness(level) == score


def test_air_or_oxygen() -> None:
    assert (risk.score_air_or_oxygen(False), risk.score_air_or_oxygen(True)) == (0, 2)


@pytest.mark.parametrize(
    "total,sub_scores,band",
    [
        (0, [0] * 7, "low"),
        (4, [1, 1, 1, 1, 0, 0, 0], "low"),
        (3, [3, 0, 0, 0, 0, 0, 0], "low_medium"),
        (4, [3, 1, 0, 0, 0, 0, 0], "low_medium"),
        (5, [1, 1, 1, 1, 1, 0, 0], "medium"),
        (6, [3, 3, 0, 0, 0, 0, 0], "medium"),
        (7, [3, 2, 2, 0, 0, 0, 0], "high"),
        (20, [3, 3, 2, 3, 3, 3, 3], "high"),
    ],
)
def test_clinical_response_bands(total: int, sub_scores: list[int], band: str) -> None:
    assert risk.band_for(total, sub_scores) == band


def full_set(minutes: int = 0, **overrides: object) -> Reading:
    """A complete set of normal observations (NEWS2 0) unless overridden."""
    values: dict = dict(
        respiratory_rate_bpm=16,
        spo2_percent=97,
        on_oxygen=False,
        systolic_mmhg=120,
        diastolic_mmhg=75,
        heart_rate_bpm=72,
        consciousness="alert",
        temperature_c=36.8,
    )
    values.update(overrides)
    return Reading(measured_at=T0 + timedelta(minutes=minutes), id=f"r{minutes:05d}", **values)


def test_a_complete_normal_set_is_zero_low_and_complete() -> None:
    news2 = assess([full_set()], spo2_scale=1, window=DAY, variability_window=WEEK).news2
    assert (news2.total, news2.band, news2.complete, news2.missing) == (0, "low", True, [])


def test_a_hand_worked_deteriorating_patient() -> None:
    # RR 26 (3), SpO2 91 (3), oxygen (2), systolic 95 (2), pulse 125 (2), voice (3), 39.2 (2) = 17
    reading = full_set(
        respiratory_rate_bpm=26,
        spo2_percent=91,
        on_oxygen=True,
        systolic_mmhg=95,
        diastolic_mmhg=60,
        heart_rate_bpm=125,
        consciousness="voice",
        temperature_c=39.2,
    )
    news2 = assess([reading], spo2_scale=1, window=DAY, variability_window=WEEK).news2
    assert news2.sub_scores == {
        "respiration_rate": 3,
        "spo2": 3,
        "air_or_oxygen": 2,
        "systolic_bp": 2,
        "pulse": 2,
        "consciousness": 3,
        "temperature": 2,
    }
    assert (news2.total, news2.band) == (17, "high")


def test_missing_parameters_are_named_never_scored_as_normal() -> None:
    only_pulse = Reading(measured_at=T0, id="r1", heart_rate_bpm=135)
    news2 = assess([only_pulse], spo2_scale=1, window=DAY, variability_window=WEEK).news2
    assert news2.complete is False
    assert news2.missing == ["respiration_rate", "spo2", "air_or_oxygen", "systolic_bp", "consciousness", "temperature"]
    assert news2.sub_scores["respiration_rate"] is None
    assert (news2.total, news2.band) == (3, "low_medium")


def test_no_readings_judge_nothing() -> None:
    result = assess([], spo2_scale=1, window=DAY, variability_window=WEEK)
    assert (result.news2.total, result.news2.band, result.based_on) == (None, None, None)
    assert len(result.news2.missing) == 7
    assert result.blood_pressure.category is None


def test_stale_values_outside_the_window_are_missing() -> None:
    old = full_set(0, respiratory_rate_bpm=30)
    recent = Reading(measured_at=T0 + timedelta(hours=25), id="r2", heart_rate_bpm=80)
    news2 = assess([old, recent], spo2_scale=1, window=DAY, variability_window=WEEK).news2
    assert "respiration_rate" in news2.missing
    assert news2.sub_scores["pulse"] == 0


def test_the_newest_value_of_each_parameter_is_used() -> None:
    readings = [
        full_set(0, heart_rate_bpm=140),
        Reading(measured_at=T0 + timedelta(minutes=30), id="r2", heart_rate_bpm=70),
    ]
    assert assess(readings, spo2_scale=1, window=DAY, variability_window=WEEK).news2.sub_scores["pulse"] == 0


def test_scale_2_patient_on_oxygen_scores_high_saturation() -> None:
    reading = full_set(spo2_percent=97, on_oxygen=True)
    scale1 = assess([reading], spo2_scale=1, window=DAY, variability_window=WEEK).news2
    scale2 = assess([reading], spo2_scale=2, window=DAY, variability_window=WEEK).news2
    assert (scale1.sub_scores["spo2"], scale2.sub_scores["spo2"]) == (0, 3)
    on_air = assess([full_set(spo2_percent=89)], spo2_scale=2, window=DAY, variability_window=WEEK).news2
    assert on_air.sub_scores["spo2"] == 0


def test_the_assessment_does_not_depend_on_reading_order() -> None:
    readings = [
        full_set(0, heart_rate_bpm=95, systolic_mmhg=150, diastolic_mmhg=95),
        full_set(10, heart_rate_bpm=120, systolic_mmhg=135, diastolic_mmhg=85),
        Reading(measured_at=T0 + timedelta(minutes=10), id="r-tie", heart_rate_bpm=60),
        full_set(20, temperature_c=38.6, systolic_mmhg=128, diastolic_mmhg=82),
    ]
    results = {
        assess(list(order), spo2_scale=1, window=DAY, variability_window=WEEK).model_dump_json()
        for order in itertools.permutations(readings)
    }
    assert len(results) == 1


@pytest.mark.parametrize(
    "systolic,diastolic,category",
    [
        (119, 79, "normal"),
        (120, 79, "elevated"),
        (129, 79, "elevated"),
        (130, 70, "stage_1_hypertension"),
        (118, 80, "stage_1_hypertension"),
        (139, 89, "stage_1_hypertension"),
        (140, 70, "stage_2_hypertension"),
        (125, 90, "stage_2_hypertension"),  # the higher category applies
        (180, 120, "stage_2_hypertension"),
        (181, 100, "hypertensive_crisis"),
        (150, 121, "hypertensive_crisis"),
    ],
)
def test_bp_category_edges(systolic: float, diastolic: float, category: str) -> None:
    assert risk.bp_category_of(systolic, diastolic) == category


def test_bp_category_uses_the_average_and_says_when_provisional() -> None:
    one = assess([full_set(0, systolic_mmhg=150, diastolic_mmhg=85)], spo2_scale=1, window=DAY, variability_window=WEEK)
    assert (one.blood_pressure.category, one.blood_pressure.readings, one.blood_pressure.provisional) == (
        "stage_2_hypertension",
        1,
        True,
    )
    two = assess(
        [full_set(0, systolic_mmhg=150, diastolic_mmhg=85), full_set(5, systolic_mmhg=110, diastolic_mmhg=70)],
        spo2_scale=1,
        window=DAY,
        variability_window=WEEK,
    ).blood_pressure
    assert (two.mean_systolic_mmhg, two.mean_diastolic_mmhg, two.category, two.provisional) == (
        130.0,
        77.5,
        "stage_1_hypertension",
        False,
    )


def series(*systolic: int) -> list[Reading]:
    return [full_set(i * 60, systolic_mmhg=s, diastolic_mmhg=60) for i, s in enumerate(systolic)]


def test_variability_indices_hand_worked() -> None:
    # 120, 140, 130, 150, 110: mean 130, SD sqrt(250) = 15.81, ARV (20+10+20+40)/4 = 22.5
    v = assess(series(120, 140, 130, 150, 110), spo2_scale=1, window=DAY, variability_window=WEEK).bp_variability
    assert (v.readings, v.sd_mmhg, v.cv, v.arv_mmhg, v.high_variability) == (5, 15.81, 0.1216, 22.5, True)


def test_low_variability_is_false_with_enough_readings() -> None:
    v = assess(series(120, 122, 118, 121, 119), spo2_scale=1, window=DAY, variability_window=WEEK).bp_variability
    assert v.high_variability is False


def test_too_few_readings_judge_no_variability() -> None:
    v = assess(series(100, 180, 100, 180), spo2_scale=1, window=DAY, variability_window=WEEK).bp_variability
    assert v.readings == 4
    assert v.sd_mmhg is not None
    assert v.high_variability is None  # not enough data, never "false"
