"""Which OBX-3 code is which vital, and which OBX-6 unit converts how into the API's unit
(doc/hl7.md has the table).

Observation codes come from the vital-sign table (painkiller_common/vital_signs.py): each sign's
ISO/IEEE 11073 MDC codes, as IHE PCD-01 monitors send them, and its LOINC code, as plain HL7 v2
senders do. Units are MDC codes (partition 4: 262144 plus the dimension's code) or UCUM, as PCD-01
allows both.
"""

from collections.abc import Callable
from dataclasses import dataclass

from painkiller_common.vital_signs import SIGNS

# The LOINC codes the FHIR mapping also takes for a sign (vital_signs.py gives one each; SpO2
# is also sent as 2708-6, the code its description names).
_MORE_LOINC = {"2708-6": "spo2_percent"}


@dataclass(frozen=True)
class Code:
    field: str
    rank: int  # when one message has a field twice (ECG heart rate and pulse rate), the lower wins


def _codes() -> dict[str, Code]:
    table: dict[str, Code] = {}
    for sign in SIGNS.values():
        for rank, mdc in enumerate(sign.mdc):
            table[str(mdc)] = Code(sign.field, rank)
        table[sign.loinc] = Code(sign.field, len(sign.mdc))
    for loinc, field in _MORE_LOINC.items():
        table[loinc] = Code(field, len(SIGNS[field].mdc) + 1)
    return table


CODES = _codes()


def _same(value: float) -> float:
    return value


def _mmhg_from_kpa(value: float) -> float:
    return value * 760 / 101.325


def _celsius_from_fahrenheit(value: float) -> float:
    return (value - 32) * 5 / 9


def _kg_from_lb(value: float) -> float:
    return value * 0.45359237


def _cm_from_inch(value: float) -> float:
    return value * 2.54


def _mg_dl_from_mmol_l(value: float) -> float:
    return value * 18.016  # glucose's molar mass, 180.16 g/mol


Convert = Callable[[float], float]

# The API's unit of a field (vital_signs.py) -> {unit as sent (UCUM, or MDC code): conversion}.
UNITS: dict[str, dict[str, Convert]] = {
    "%": {"%": _same, "262688": _same},
    "/min": {"/min": _same, "{beats}/min": _same, "{breaths}/min": _same, "264864": _same, "264896": _same,
             "264928": _same},
    "mm[Hg]": {"mm[Hg]": _same, "mmHg": _same, "266016": _same, "kPa": _mmhg_from_kpa, "265987": _mmhg_from_kpa},
    "Cel": {"Cel": _same, "268192": _same, "[degF]": _celsius_from_fahrenheit, "266560": _celsius_from_fahrenheit},
    "kg": {"kg": _same, "263875": _same, "[lb_av]": _kg_from_lb, "263904": _kg_from_lb},
    "cm": {"cm": _same, "263441": _same, "[in_i]": _cm_from_inch, "263520": _cm_from_inch},
    "mg/dL": {"mg/dL": _same, "264274": _same, "mmol/L": _mg_dl_from_mmol_l, "266866": _mg_dl_from_mmol_l},
}  # fmt: skip


def conversion(field: str, unit: str) -> Convert | None:
    """How a value of `field` sent in `unit` becomes the API's unit; None for a unit it cannot be."""
    return UNITS[SIGNS[field].unit].get(unit)


# The two NEWS2 parameters that are not a number of the vital-sign table (doc/hl7.md).
# Consciousness: LOINC 67775-7 (level of responsiveness), its value the ACVPU letter or the
# SNOMED CT finding.
CONSCIOUSNESS_CODE = "67775-7"
ACVPU = {
    "A": "alert", "C": "confusion", "V": "voice", "P": "pain", "U": "unresponsive",
    "248234008": "alert", "300202002": "voice", "255373000": "voice", "450847001": "pain", "422768004": "unresponsive",
}  # fmt: skip
# Air or oxygen: supplemental oxygen when the inhaled oxygen concentration (LOINC 3150-0, %) is
# above room air's 21 %, or the inhaled oxygen flow rate (LOINC 3151-8, L/min) above 0.
OXYGEN_ABOVE = {"3150-0": 21.0, "3151-8": 0.0}
