"""Readings as FHIR R4 vital-signs Observations, and back (doc/fhir.md).

An Observation posted in FHIR becomes a `Reading`, so it meets exactly the rules of the JSON API,
and the errors name the FHIR element at fault. Searches read the same keyset order as the JSON
API's pages (newest `measured_at` first, on the same indexes), so a page costs the same at any depth.
"""

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from fhir.resources.R4B.observation import Observation
from fhir.resources.R4B.quantity import Quantity as FhirQuantity
from pydantic import ValidationError

from measurement_service.readings.schemas import Reading
from painkiller_common import fhir
from painkiller_common.db.pg import Connection, Row
from painkiller_common.db.statements import Statement
from painkiller_common.errors import Invalid
from painkiller_common.fhir.vitals import (
    CATEGORY_SYSTEM,
    LOINC,
    UCUM,
    VITAL_SIGNS,
    VITALS,
    Quantity,
    Vital,
    observations,
    selected,
)
from painkiller_common.http.pagination import encode_cursor

QUANTITY_FIELDS = [quantity.field for vital in VITALS for quantity in vital.quantities]
# What an Observation is built from: the reading's keys and its vitals' values.
_ROWS = f"SELECT id, patient_id, measured_at, {', '.join(QUANTITY_FIELDS)} FROM measurements"
_READ = Statement.compile(f"{_ROWS} WHERE id = :id")


async def read(conn: Connection, measurement_id: uuid.UUID) -> Row | None:
    return await _READ.one(conn, {"id": measurement_id})


@dataclass
class Posted:
    """What Observations posted together say: one patient, one moment, the vitals' values, and
    where in the request each value came from (for the errors)."""

    patient_id: uuid.UUID | None = None
    measured_at: datetime | None = None
    values: dict[str, Any] = field(default_factory=dict)
    elements: dict[str, str] = field(default_factory=dict)  # reading field -> FHIR element
    vitals: list[Vital] = field(default_factory=list)  # in the order posted

    def add(self, resource: Observation, at: str) -> None:
        """Add one Observation (`at`: its FHIRPath in the request)."""
        if resource.status != "final":
            raise Invalid(([f"{at}.status"], "only final observations are stored"))
        _check_category(resource, at)
        vital = _vital(resource, at)
        if vital in self.vitals:
            raise Invalid(([f"{at}.code"], f"{vital.display} is sent twice for one measurement"))
        self.vitals.append(vital)
        self._same("patient_id", _subject(resource, at), f"{at}.subject")
        self._same("measured_at", _effective(resource, at), f"{at}.effectiveDateTime")
        self.elements.setdefault("measured_at", f"{at}.effectiveDateTime")
        for quantity in vital.quantities:
            given, element = _given(resource, vital, quantity, at)
            self.values[quantity.field] = _value(given, quantity, element)
            self.elements[quantity.field] = f"{element}.value"

    def _same(self, name: str, value: Any, element: str) -> None:
        if getattr(self, name) not in (None, value):
            raise Invalid(([element], "every Observation of one measurement has the same subject and time"))
        setattr(self, name, value)

    def reading(self) -> Reading:
        """The JSON API's reading; 422 naming the FHIR element if it breaks a rule of it."""
        try:
            return Reading.model_validate({"measured_at": self.measured_at, **self.values})
        except ValidationError as exc:
            raise Invalid(*[([self._element(err)], str(err["msg"])) for err in exc.errors()]) from None

    def _element(self, error: Any) -> str:
        name = (error.get("ctx") or {}).get("field") or (error["loc"][0] if error["loc"] else "")
        return self.elements.get(str(name), "Observation")


def _check_category(resource: Observation, at: str) -> None:
    codings = [coding for category in resource.category or [] for coding in category.coding or []]
    if codings and not any(c.code == VITAL_SIGNS and c.system in (CATEGORY_SYSTEM, None) for c in codings):
        raise Invalid(([f"{at}.category"], "only vital-signs Observations are stored"))


def _vital(resource: Observation, at: str) -> Vital:
    codes = {coding.code for coding in resource.code.coding or [] if coding.system == LOINC}
    for vital in VITALS:
        if vital.codes & codes:
            return vital
    known = ", ".join(vital.code for vital in VITALS)
    raise Invalid(([f"{at}.code"], f"a LOINC code of a vital sign is needed, one of {known}"))


def _subject(resource: Observation, at: str) -> uuid.UUID:
    reference = resource.subject.reference if resource.subject else None
    try:
        if not reference or not reference.startswith("Patient/"):
            raise ValueError
        return uuid.UUID(reference.removeprefix("Patient/"))
    except ValueError:
        raise Invalid(([f"{at}.subject"], "the subject must be a reference Patient/<id>")) from None


def _effective(resource: Observation, at: str) -> datetime:
    value = resource.effectiveDateTime
    if not isinstance(value, datetime) or value.tzinfo is None:
        raise Invalid(([f"{at}.effectiveDateTime"], "an effectiveDateTime with a time and a zone is needed"))
    return value


def _given(resource: Observation, vital: Vital, quantity: Quantity, at: str) -> tuple[FhirQuantity | None, str]:
    """The quantity sent for `quantity`, and where: the value, or the panel's component with its code."""
    if not vital.is_panel:
        return resource.valueQuantity, f"{at}.valueQuantity"
    for index, component in enumerate(resource.component or []):
        if any(coding.code == quantity.code for coding in component.code.coding or []):
            return component.valueQuantity, f"{at}.component[{index}].valueQuantity"
    return None, f"{at}.component"


def _value(given: FhirQuantity | None, quantity: Quantity, element: str) -> int | float:
    if given is None or given.value is None:
        raise Invalid(([element], f"{quantity.display} needs a valueQuantity"))
    if given.code != quantity.unit or given.system not in (UCUM, None):
        raise Invalid(([f"{element}.code"], f"{quantity.display} is stored in UCUM {quantity.unit!r}"))
    value = Decimal(str(given.value))
    return int(value) if value == value.to_integral_value() else float(value)


# --- Search -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Found:
    observations: list[Observation]
    touched: list[tuple[uuid.UUID, uuid.UUID]]  # (reading, patient), for the audit trail
    next_cursor: str | None


async def search(conn: Connection, query: fhir.Search, patient_ids: list[uuid.UUID] | None) -> Found:
    """A page of Observations, newest first; `patient_ids` None: every patient's."""
    vitals = selected(query.values("category"), query.values("code"))
    if not vitals or patient_ids == []:
        return Found([], [], None)
    where, values = _where(query, vitals, patient_ids)
    statement = Statement.compile(
        f"{_ROWS} WHERE {' AND '.join(where)} ORDER BY measured_at DESC, id DESC LIMIT {query.count + 1}"
    )
    rows = await statement.all(conn, values)
    return _page(rows, vitals, query)


def _where(
    query: fhir.Search, vitals: list[Vital], patient_ids: list[uuid.UUID] | None
) -> tuple[list[str], dict[str, Any]]:
    """The search's conditions (named parameters, db/statements.py) and their values."""
    where: list[str] = []
    values: dict[str, Any] = {}
    if patient_ids is not None and len(patient_ids) == 1:  # `=`, so the index gives the order
        where.append("patient_id = :patient")
        values["patient"] = patient_ids[0]
    elif patient_ids is not None:
        where.append("patient_id = ANY(:patients::uuid[])")
        values["patients"] = patient_ids
    low, high = fhir.instant_bounds([fhir.date_range("date", value) for value in query.values("date")])
    if low:
        where.append("measured_at >= :low")
        values["low"] = low
    if high:
        where.append("measured_at < :high")
        values["high"] = high
    # Every row holds one of them, so count + 1 rows fill a page and say whether there is more.
    where.append("(" + " OR ".join(f"{vital.quantities[0].field} IS NOT NULL" for vital in vitals) + ")")
    if position := query.position():
        where.append("(measured_at, id) <= (:at, :row_id)")
        values["at"], values["row_id"], _ = position
    return where, values


def _page(rows: list[Row], vitals: list[Vital], query: fhir.Search) -> Found:
    """Up to `_count` Observations from the rows. A reading that does not fit whole starts the
    next page: its cursor names the reading and how many of its Observations were served."""
    skip = position[2] if (position := query.position()) else 0
    found: list[Observation] = []
    touched: list[tuple[uuid.UUID, uuid.UUID]] = []
    for row in rows:
        held = [o for o in _observations(row) if _vital_of(o) in vitals]
        start, skip = skip, 0
        room = query.count - len(found)
        if len(held) - start > room:
            found += held[start : start + room]
            touched += [(row["id"], row["patient_id"])] if room else []
            return Found(found, touched, f"{encode_cursor(row['measured_at'], row['id'])}.{start + room}")
        found += held[start:]
        touched.append((row["id"], row["patient_id"]))
    return Found(found, touched, None)


def _observations(row: Row) -> list[Observation]:
    return observations(row, measurement_id=row["id"], patient_id=row["patient_id"], at=row["measured_at"])


def _vital_of(resource: Observation) -> Vital:
    key = str(resource.id)[37:]
    return next(vital for vital in VITALS if vital.key == key)
