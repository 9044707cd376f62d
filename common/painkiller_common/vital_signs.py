"""Every numeric vital sign a reading can hold, once: its field, type, plausible range, unit and
codes, and its NEWS2 bands where it is scored on its own value.

Everything else takes what it needs from `SIGNS`: the contract's field types and the API's
documents (contracts.py), the databases' CHECK constraints (tables.vital_range_checks), the FHIR
mapping (fhir_vitals.py) and the NEWS2 rules (patient_service/risk/scores.py). A new vital starts here.

- Ranges: plausibility limits (MIMIC-IV vital-sign cleaning, doc/api.md); outside them a value is
  a device or entry error (98.6 sent as `temperature_c`), refused by the API, by a consumer and by
  the database.
- Units: UCUM, as the API takes them. Codes: LOINC as FHIR's vital-signs profile uses it, and the
  ISO/IEEE 11073 MDC codes bedside monitors send for it (IHE PCD-01).
- NEWS2: RCP 2017 chart 1, as (inclusive upper bound, score) from the lowest band up; the value is
  read at the chart's `resolution` (temperature to one decimal: 35.04 is 35.0). SpO2's scale 2,
  air or oxygen and consciousness depend on more than one value: risk.py scores them.
"""

import math
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal


@dataclass(frozen=True)
class VitalSign:
    field: str  # the reading's field, the event's and the tables' column
    type: type[int] | type[float]
    low: float  # plausible range, inclusive
    high: float
    unit: str  # UCUM
    loinc: str
    display: str  # LOINC's short name
    description: str  # as the API's documents give it
    mdc: tuple[int, ...] = ()
    news2: tuple[tuple[float, int], ...] = ()
    resolution: float = 1
    reference: tuple[float, float] | None = None  # normal range where NEWS2 gives none

    def news2_score(self, value: float) -> int:
        """The NEWS2 sub-score of `value`, read as the chart reads it (the bounds of a band read
        to a decimal are whole numbers, exact as floats, so a Decimal compares with them exactly)."""
        read: float | Decimal = value
        if self.resolution != 1:
            read = Decimal(str(value)).quantize(Decimal(str(self.resolution)), rounding=ROUND_HALF_UP)
        return next(score for up_to, score in self.news2 if read <= up_to)

    @property
    def normal(self) -> tuple[float, float] | None:
        """The range flagged normal: NEWS2's zero-score band (within the plausible range), else
        the reference range, if any."""
        for index, (up_to, score) in enumerate(self.news2):
            if score == 0:
                above = self.news2[index - 1][0] + self.resolution if index else self.low
                return round(above, 6), min(up_to, self.high)
        return self.reference


_ALL = (
    VitalSign(
        "temperature_c", float, 10, 50, "Cel", "8310-5", "Body temperature",
        "Body temperature, Cel (LOINC 8310-5).",
        mdc=(150344, 150364),
        news2=((35.0, 3), (36.0, 1), (38.0, 0), (39.0, 1), (math.inf, 2)),
        resolution=0.1,
    ),
    VitalSign(
        "heart_rate_bpm", int, 0, 300, "/min", "8867-4", "Heart rate",
        "Heart rate, /min (LOINC 8867-4).",
        mdc=(147842, 149530),
        news2=((40, 3), (50, 1), (90, 0), (110, 1), (130, 2), (math.inf, 3)),
    ),
    VitalSign(
        "respiratory_rate_bpm", int, 0, 70, "/min", "9279-1", "Respiratory rate",
        "Respiratory rate, /min (LOINC 9279-1).",
        mdc=(151562,),
        news2=((8, 3), (11, 1), (20, 0), (24, 2), (math.inf, 3)),
    ),
    VitalSign(
        "spo2_percent", int, 0, 100, "%", "59408-5", "Oxygen saturation",
        "Oxygen saturation, % (LOINC 2708-6).",
        mdc=(150456,),
        news2=((91, 3), (93, 2), (95, 1), (math.inf, 0)),  # scale 1; scale 2 is in risk.py
    ),
    VitalSign(
        "systolic_mmhg", int, 0, 400, "mm[Hg]", "8480-6", "Systolic blood pressure",
        "Systolic BP, mm[Hg] (LOINC 8480-6); with diastolic.",
        mdc=(150021, 150301),
        news2=((90, 3), (100, 2), (110, 1), (219, 0), (math.inf, 3)),
    ),
    VitalSign(
        "diastolic_mmhg", int, 0, 300, "mm[Hg]", "8462-4", "Diastolic blood pressure",
        "Diastolic BP, mm[Hg] (LOINC 8462-4); below systolic.",
        mdc=(150022, 150302),
    ),
    VitalSign(
        "weight_kg", float, 0.2, 700, "kg", "29463-7", "Body weight",
        "Body weight, kg (LOINC 29463-7).",
        mdc=(188736,),
    ),
    VitalSign(
        "height_cm", float, 20, 300, "cm", "8302-2", "Body height",
        "Body height, cm (LOINC 8302-2).",
        mdc=(188740,),
    ),
    VitalSign(
        "glucose_mg_dl", float, 1, 3000, "mg/dL", "2339-0", "Glucose",
        "Blood glucose, mg/dL (LOINC 2339-0).",
        mdc=(160184,),
        reference=(70, 140),  # fasting range: no NEWS2 band
    ),
)  # fmt: skip

# In the order the API documents a reading's fields.
SIGNS: dict[str, VitalSign] = {sign.field: sign for sign in _ALL}
