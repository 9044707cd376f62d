"""A reading's vitals as FHIR R4 Observations of the vital-signs profile: LOINC codes, UCUM units,
blood pressure as a panel with two components (the mapping table is in doc/fhir.md).

One stored reading is one Observation per vital it holds, each with a stable id: the reading's
id and the vital's key (`<measurement id>-heart-rate`). The measurement service builds them from
its rows; the patient service from `latest_vitals`, for `$lastn`.
"""

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fhir.resources.R4B.observation import Observation

from painkiller_common.vital_signs import SIGNS

LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
CATEGORY_SYSTEM = "http://terminology.hl7.org/CodeSystem/observation-category"
INTERPRETATION_SYSTEM = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
VITAL_SIGNS = "vital-signs"
PROFILE = "http://hl7.org/fhir/StructureDefinition/vitalsigns"


@dataclass(frozen=True)
class Quantity:
    """One value of a vital: the reading's field, its LOINC code and UCUM unit, and the range
    outside which it is flagged (NEWS2's zero-score band, doc/risk.md; glucose: fasting range),
    all from vital_signs.SIGNS."""

    field: str
    code: str
    display: str
    unit: str
    normal: tuple[float, float] | None = None


def _measured(field: str) -> Quantity:
    """A vital's value as its row in vital_signs.SIGNS gives it."""
    sign = SIGNS[field]
    return Quantity(field, sign.loinc, sign.display, sign.unit, sign.normal)


@dataclass(frozen=True)
class Vital:
    key: str  # in Observation ids
    code: str  # the Observation's LOINC code
    display: str
    quantities: tuple[Quantity, ...]  # one: the value; two: the components (blood pressure)
    extra_codes: tuple[tuple[str, str], ...] = ()  # other LOINC codes the profile asks for

    @property
    def is_panel(self) -> bool:
        return len(self.quantities) > 1

    @property
    def codes(self) -> set[str]:
        return {self.code, *(code for code, _ in self.extra_codes)}


def _single(key: str, field: str, display: str | None = None, extra_codes: tuple[tuple[str, str], ...] = ()) -> Vital:
    """A vital of one value, coded as that value is (`display`: the Observation's, where the
    profile names it more fully than the value)."""
    value = _measured(field)
    return Vital(key, value.code, display or value.display, (value,), extra_codes)


VITALS = (
    _single("heart-rate", "heart_rate_bpm"),
    _single("respiratory-rate", "respiratory_rate_bpm"),
    _single(
        "oxygen-saturation",
        "spo2_percent",
        "Oxygen saturation in Arterial blood by Pulse oximetry",
        extra_codes=(("2708-6", "Oxygen saturation in Arterial blood"),),
    ),
    _single("body-temperature", "temperature_c"),
    _single("body-weight", "weight_kg"),
    _single("body-height", "height_cm"),
    _single("glucose", "glucose_mg_dl", "Glucose [Mass/volume] in Blood"),
    Vital(
        "blood-pressure",
        "85354-9",
        "Blood pressure panel with all children optional",
        (_measured("systolic_mmhg"), _measured("diastolic_mmhg")),
    ),
)
BY_KEY = {vital.key: vital for vital in VITALS}


def vitals_with_code(code: str) -> list[Vital]:
    """The vitals a token search value names: `8867-4`, `http://loinc.org|8867-4` or `|8867-4`."""
    system, _, value = code.rpartition("|") if "|" in code else (LOINC, "", code)
    if system not in (LOINC, ""):
        return []
    return [vital for vital in VITALS if value in vital.codes]


def selected(categories: list[str], codes: list[str]) -> list[Vital]:
    """The vitals a search's `category` and `code` values let through (a comma separates codes)."""
    if any(value.rpartition("|")[2] != VITAL_SIGNS for value in categories):
        return []
    named = [code for value in codes for code in value.split(",")]
    return [vital for vital in VITALS if not named or any(vital in vitals_with_code(code) for code in named)]


def observation_id(measurement_id: uuid.UUID, vital: Vital) -> str:
    return f"{measurement_id}-{vital.key}"


def parse_observation_id(value: str) -> tuple[uuid.UUID, Vital] | None:
    """The reading and the vital an Observation id names; None if it names none."""
    head, key = value[:36], value[37:]
    if len(value) < 38 or value[36] != "-" or key not in BY_KEY:
        return None
    try:
        return uuid.UUID(head), BY_KEY[key]
    except ValueError:
        return None


def observation(
    vital: Vital, values: Mapping[str, Any], *, measurement_id: uuid.UUID, patient_id: uuid.UUID, at: datetime
) -> Observation:
    """The Observation of `vital` from a reading's `values` (every quantity of it present)."""
    coding = [{"system": LOINC, "code": vital.code, "display": vital.display}]
    coding += [{"system": LOINC, "code": code, "display": display} for code, display in vital.extra_codes]
    data: dict[str, Any] = {
        "resourceType": "Observation",
        "id": observation_id(measurement_id, vital),
        "meta": {"profile": [PROFILE]},
        "status": "final",
        "category": [{"coding": [{"system": CATEGORY_SYSTEM, "code": VITAL_SIGNS, "display": "Vital Signs"}]}],
        "code": {"coding": coding, "text": vital.display},
        "subject": {"reference": f"Patient/{patient_id}"},
        "effectiveDateTime": at.isoformat(),
    }
    if vital.is_panel:
        data["component"] = [
            {"code": {"coding": [_coding(quantity)], "text": quantity.display}, **_value(quantity, values)}
            for quantity in vital.quantities
        ]
    else:
        data.update(_value(vital.quantities[0], values))
    return Observation.model_validate(data)


def observations(
    values: Mapping[str, Any], *, measurement_id: uuid.UUID, patient_id: uuid.UUID, at: datetime
) -> list[Observation]:
    """Every Observation a reading holds, in the order of VITALS (ACVPU and oxygen are not mapped)."""
    return [
        observation(vital, values, measurement_id=measurement_id, patient_id=patient_id, at=at)
        for vital in VITALS
        if all(values.get(quantity.field) is not None for quantity in vital.quantities)
    ]


def _coding(quantity: Quantity) -> dict[str, str]:
    return {"system": LOINC, "code": quantity.code, "display": quantity.display}


def _value(quantity: Quantity, values: Mapping[str, Any]) -> dict[str, Any]:
    """`valueQuantity`, with `interpretation` and `referenceRange` where there is a normal range."""
    value = values[quantity.field]
    out: dict[str, Any] = {
        "valueQuantity": {"value": value, "unit": quantity.unit, "system": UCUM, "code": quantity.unit}
    }
    if quantity.normal is not None:
        low, high = quantity.normal
        flag = "L" if value < low else "H" if value > high else "N"
        text = {"L": "Low", "H": "High", "N": "Normal"}[flag]
        out["interpretation"] = [{"coding": [{"system": INTERPRETATION_SYSTEM, "code": flag, "display": text}]}]
        out["referenceRange"] = [
            {
                "low": {"value": low, "unit": quantity.unit, "system": UCUM, "code": quantity.unit},
                "high": {"value": high, "unit": quantity.unit, "system": UCUM, "code": quantity.unit},
            }
        ]
    return out
