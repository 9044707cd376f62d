"""Early-warning risk from a patient's readings: NEWS2, blood-pressure category and variability.

Pure functions: readings in, a typed assessment out; nothing here reads or writes a database.
Every rule follows doc/risk.md:
- NEWS2: Royal College of Physicians, National Early Warning Score 2 (2017), chart 1.
- Blood-pressure category: ACC/AHA 2017 guideline (Whelton et al.), table 6.
- Variability: SD, coefficient of variation and average real variability of systolic BP
  (Stevens et al., BMJ 2016; Diaz et al., Hypertension 2014).

The assessment is a function of the set of readings alone: the window is anchored at the newest
reading, not at the clock, so the same readings always give the same assessment whatever order
their events arrived in.
"""

import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, Field

from painkiller_common.vital_signs import SIGNS

Band = Literal["low", "low_medium", "medium", "high"]
BAND_RANK: dict[str, int] = {"low": 0, "low_medium": 1, "medium": 2, "high": 3}
BpCategory = Literal["normal", "elevated", "stage_1_hypertension", "stage_2_hypertension", "hypertensive_crisis"]
Parameter = Literal["respiration_rate", "spo2", "air_or_oxygen", "systolic_bp", "pulse", "consciousness", "temperature"]
PARAMETERS: tuple[Parameter, ...] = (
    "respiration_rate",
    "spo2",
    "air_or_oxygen",
    "systolic_bp",
    "pulse",
    "consciousness",
    "temperature",
)

# Below this many systolic readings, variability is noise (doc/risk.md): no judgement is made.
MIN_VARIABILITY_READINGS = 5
# High visit-to-visit variability: systolic SD at or above this (mmHg). Diaz et al. report stroke
# risk rising per 5 mmHg of SD; 15 mmHg is a conventional "high" cut-off. A setting, not a law.
HIGH_SD_MMHG = 15.0


@dataclass(frozen=True)
class Reading:
    """The fields of one stored reading that risk uses."""

    measured_at: datetime
    id: str  # breaks ties between readings taken at the same instant
    respiratory_rate_bpm: int | None = None
    spo2_percent: int | None = None
    on_oxygen: bool | None = None
    systolic_mmhg: int | None = None
    diastolic_mmhg: int | None = None
    heart_rate_bpm: int | None = None
    consciousness: str | None = None
    temperature_c: float | None = None


# The vitals a Reading holds, in the order of the RCP's chart.
READING_VALUES: tuple[str, ...] = tuple(f.name for f in fields(Reading) if f.name not in ("measured_at", "id"))

# --- NEWS2 sub-scores (RCP 2017, chart 1) -----------------------------------------------------
# A parameter scored on one value takes its bands from that vital's row (vital_signs.SIGNS);
# those scored on more than one (SpO2 scale 2, air or oxygen, consciousness) are here.


def score_respiration(rate: int) -> int:
    return SIGNS["respiratory_rate_bpm"].news2_score(rate)


def score_spo2_scale1(spo2: int) -> int:
    return SIGNS["spo2_percent"].news2_score(spo2)


def score_spo2_scale2(spo2: int, on_oxygen: bool | None) -> int:
    """Scale 2 (hypercapnic respiratory failure, target 88-92%). Above 92% only oxygen scores:
    with the oxygen status unknown it is scored as air, and `air_or_oxygen` is reported missing."""
    if spo2 <= 83:
        return 3
    if spo2 <= 85:
        return 2
    if spo2 <= 87:
        return 1
    if spo2 <= 92 or not on_oxygen:
        return 0
    if spo2 <= 94:
        return 1
    if spo2 <= 96:
        return 2
    return 3


def score_air_or_oxygen(on_oxygen: bool) -> int:
    return 2 if on_oxygen else 0


def score_systolic(systolic: int) -> int:
    return SIGNS["systolic_mmhg"].news2_score(systolic)


def score_pulse(pulse: int) -> int:
    return SIGNS["heart_rate_bpm"].news2_score(pulse)


def score_consciousness(level: str) -> int:
    return 0 if level == "alert" else 3  # new confusion, voice, pain or unresponsive


def score_temperature(celsius: float) -> int:
    # The chart is read to one decimal: 35.04 is 35.0 (score 3), not "above 35.0" (vital_signs.py).
    return SIGNS["temperature_c"].news2_score(celsius)


def band_for(total: int, sub_scores: Sequence[int]) -> Band:
    """RCP clinical response: 7+ high, 5-6 medium, a single 3 low-medium, otherwise low."""
    if total >= 7:
        return "high"
    if total >= 5:
        return "medium"
    if 3 in sub_scores:
        return "low_medium"
    return "low"


# --- results ----------------------------------------------------------------------------------


class News2(BaseModel):
    total: int | None = Field(description="Sum of the sub-scores available; null when none is.")
    band: Band | None = Field(description="Clinical response band; null when no parameter is available.")
    sub_scores: dict[Parameter, int | None] = Field(description="Null where the parameter is missing.")
    complete: bool
    missing: list[Parameter] = Field(description="Parameters with no value in the window.")
    spo2_scale: Literal[1, 2]


class BloodPressureCategory(BaseModel):
    category: BpCategory | None
    readings: int = Field(description="How many readings the averages are over.")
    mean_systolic_mmhg: float | None
    mean_diastolic_mmhg: float | None
    provisional: bool = Field(description="True below two readings: a category needs an average.")


class BloodPressureVariability(BaseModel):
    readings: int
    sd_mmhg: float | None
    cv: float | None = Field(description="Coefficient of variation, SD / mean.")
    arv_mmhg: float | None = Field(description="Average real variability: mean |difference| of consecutive readings.")
    high_variability: bool | None = Field(
        description=f"SD >= {HIGH_SD_MMHG:g} mmHg; null below {MIN_VARIABILITY_READINGS} readings (not enough data)."
    )


class RiskAssessment(BaseModel):
    based_on: datetime | None = Field(description="When the newest reading used was measured.")
    window_hours: float
    news2: News2
    blood_pressure: BloodPressureCategory
    bp_variability: BloodPressureVariability


# --- assessment -------------------------------------------------------------------------------


def _latest(readings: Sequence[Reading], field: str) -> Reading | None:
    """The newest reading that has `field` (readings are sorted oldest first)."""
    return next((r for r in reversed(readings) if getattr(r, field) is not None), None)


def _newest(readings: Sequence[Reading], field: str) -> Any:
    """The newest value of `field` among `readings`, or None."""
    reading = _latest(readings, field)
    return getattr(reading, field) if reading else None


def _score(score: Callable[[Any], int], value: Any) -> int | None:
    return score(value) if value is not None else None


def spo2_scale_of(stored: int) -> Literal[1, 2]:
    """A patient's stored scale as the type says: the database allows only 1 and 2."""
    return 2 if stored == 2 else 1


def news2(readings: Sequence[Reading], spo2_scale: Literal[1, 2]) -> News2:
    """NEWS2 from the newest value of each parameter among `readings` (oldest first)."""
    spo2 = _latest(readings, "spo2_percent")
    on_oxygen = _newest(readings, "on_oxygen")
    values: dict[Parameter, int | None] = {}
    values["respiration_rate"] = _score(score_respiration, _newest(readings, "respiratory_rate_bpm"))
    if spo2 is None or spo2.spo2_percent is None:
        values["spo2"] = None
    elif spo2_scale == 2:
        # The oxygen status at the time of that SpO2 reading, if it was recorded with it.
        on_o2 = spo2.on_oxygen if spo2.on_oxygen is not None else on_oxygen
        values["spo2"] = score_spo2_scale2(spo2.spo2_percent, on_o2)
    else:
        values["spo2"] = score_spo2_scale1(spo2.spo2_percent)
    values["air_or_oxygen"] = _score(score_air_or_oxygen, on_oxygen)
    values["systolic_bp"] = _score(score_systolic, _newest(readings, "systolic_mmhg"))
    values["pulse"] = _score(score_pulse, _newest(readings, "heart_rate_bpm"))
    values["consciousness"] = _score(score_consciousness, _newest(readings, "consciousness"))
    values["temperature"] = _score(score_temperature, _newest(readings, "temperature_c"))

    present = [score for score in values.values() if score is not None]
    total = sum(present) if present else None
    missing = [p for p in PARAMETERS if values[p] is None]
    return News2(
        total=total,
        band=band_for(total, present) if total is not None else None,
        sub_scores=values,
        complete=not missing,
        missing=missing,
        spo2_scale=spo2_scale,
    )


def bp_category_of(systolic: float, diastolic: float) -> BpCategory:
    """ACC/AHA 2017; when systolic and diastolic disagree, the higher category applies."""
    if systolic > 180 or diastolic > 120:
        return "hypertensive_crisis"
    if systolic >= 140 or diastolic >= 90:
        return "stage_2_hypertension"
    if systolic >= 130 or diastolic >= 80:
        return "stage_1_hypertension"
    if systolic >= 120:
        return "elevated"
    return "normal"


def blood_pressure(readings: Sequence[Reading]) -> BloodPressureCategory:
    pairs = [(r.systolic_mmhg, r.diastolic_mmhg) for r in readings if r.systolic_mmhg is not None]
    if not pairs:
        return BloodPressureCategory(
            category=None, readings=0, mean_systolic_mmhg=None, mean_diastolic_mmhg=None, provisional=True
        )
    mean_sys = statistics.fmean(s for s, _ in pairs)
    mean_dia = statistics.fmean(d for _, d in pairs if d is not None)  # a pair always has both (the API's rule)
    return BloodPressureCategory(
        category=bp_category_of(mean_sys, mean_dia),
        readings=len(pairs),
        mean_systolic_mmhg=round(mean_sys, 1),
        mean_diastolic_mmhg=round(mean_dia, 1),
        provisional=len(pairs) < 2,
    )


def bp_variability(readings: Sequence[Reading]) -> BloodPressureVariability:
    series = [float(r.systolic_mmhg) for r in readings if r.systolic_mmhg is not None]
    if len(series) < 2:
        return BloodPressureVariability(
            readings=len(series), sd_mmhg=None, cv=None, arv_mmhg=None, high_variability=None
        )
    sd = statistics.stdev(series)
    arv = statistics.fmean(abs(b - a) for a, b in zip(series, series[1:], strict=False))
    enough = len(series) >= MIN_VARIABILITY_READINGS
    return BloodPressureVariability(
        readings=len(series),
        sd_mmhg=round(sd, 2),
        cv=round(sd / statistics.fmean(series), 4),
        arv_mmhg=round(arv, 2),
        high_variability=(sd >= HIGH_SD_MMHG) if enough else None,
    )


def assess(
    readings: Sequence[Reading], *, spo2_scale: Literal[1, 2], window: timedelta, variability_window: timedelta
) -> RiskAssessment:
    """The whole assessment from a patient's readings, in any order."""
    ordered = sorted(readings, key=lambda r: (r.measured_at, r.id))
    based_on = ordered[-1].measured_at if ordered else None
    recent = [r for r in ordered if based_on - r.measured_at <= window] if based_on else []
    longer = [r for r in ordered if based_on - r.measured_at <= variability_window] if based_on else []
    return RiskAssessment(
        based_on=based_on,
        window_hours=window.total_seconds() / 3600,
        news2=news2(recent, spo2_scale),
        blood_pressure=blood_pressure(recent),
        bp_variability=bp_variability(longer),
    )
