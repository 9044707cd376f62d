"""What an HL7 v2 message says: its header, and for an `ORU^R01` the patient's MRN and one
reading per OBR group, in the API's fields and units (doc/hl7.md).

The pipe format is read by hl7/er7.py, which splits only the fields read (why not python-hl7's
parser: there). The listener frames MLLP blocks itself, so that it can cap their size, keep the
raw bytes and answer a broken block.
"""

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from pydantic import ValidationError

from measurement_service.hl7 import er7
from measurement_service.hl7.codes import ACVPU, CODES, CONSCIOUSNESS_CODE, OXYGEN_ABOVE, conversion
from measurement_service.readings.schemas import Reading
from painkiller_common.vital_signs import SIGNS

VERSIONS = ("2.3", "2.3.1", "2.4", "2.5", "2.5.1", "2.6")
STORED_STATUSES = ("F", "R", "C")  # final, not verified, corrected (OBX-11)
_DTM = re.compile(r"^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})?(?:\.(\d{1,4}))?([+-]\d{4})$")


@dataclass  # not frozen: raising sets its __traceback__
class Problem(Exception):
    """Why a message is not taken: `AE` (its content; the sender may correct and resend) or `AR`
    (never accepted), and where, as the ACK's ERR segment says it."""

    ack: str
    text: str
    segment: str = ""
    sequence: int = 1
    position: int = 0
    code: int = 207  # HL7 table 0357: 207 application internal error, 102 data type error...


@dataclass(frozen=True)
class Header:
    sending_application: str
    sending_facility: str
    receiving_application: str
    receiving_facility: str
    control_id: str
    message_type: str  # "ORU^R01"
    trigger: str
    version: str


@dataclass
class Group:
    """One OBR and its OBX: one reading."""

    values: dict[str, Any] = field(default_factory=dict)
    ranks: dict[str, int] = field(default_factory=dict)
    where: dict[str, int] = field(default_factory=dict)  # field -> OBX set id, for errors
    measured_at: datetime | None = None
    source: str | None = None


@dataclass(frozen=True)
class Observations:
    mrn: str
    readings: list[dict[str, Any]]  # each a valid `Reading`'s fields, JSON-ready


def parse(raw: str) -> er7.Message:
    try:
        return er7.parse(raw)
    except er7.NotHL7 as exc:
        raise Problem("AR", f"not an HL7 v2 message ({exc})", code=100) from None


def header_of(message: er7.Message) -> Header:
    """MSH's fields, as they are (`check` says whether they are taken)."""
    msh = message.segments[0]  # parse made sure it is MSH
    return Header(
        sending_application=msh.text(3),
        sending_facility=msh.text(4),
        receiving_application=msh.text(5),
        receiving_facility=msh.text(6),
        control_id=msh.text(10),
        message_type=f"{msh.component(9, 1)}^{msh.component(9, 2)}",
        trigger=msh.component(9, 2),
        version=msh.component(12, 1),
    )


def check(header: Header, types: tuple[str, ...]) -> None:
    """`AR` for a message without a control id, of a version or a type not taken."""
    if not header.control_id:
        raise Problem("AR", "MSH-10 (message control id) is required", "MSH", 1, 10, code=101)
    if header.version not in VERSIONS:
        raise Problem("AR", f"HL7 version {header.version!r} is not supported", "MSH", 1, 12, code=203)
    if header.message_type not in types:
        raise Problem("AR", f"message type {header.message_type} is not taken", "MSH", 1, 9, code=200)


def observations(message: er7.Message) -> Observations:
    """The MRN and readings of an ORU^R01; `AE` naming the segment and field of what is wrong."""
    groups: list[Group] = []
    obr_time: datetime | None = None
    mrn = _mrn(message)
    for segment in message.segments:
        kind = segment.name
        if kind == "OBR":
            obr_time = _time(segment, 7, "OBR", int(segment.text(1) or 1))
            groups.append(Group(measured_at=obr_time))
        elif kind == "OBX":
            if not groups:
                groups.append(Group())
            _observe(groups[-1], segment)
    readings = [_reading(group) for group in groups if group.values]
    if not readings:
        raise Problem("AE", "no numeric OBX maps to a vital sign", "OBX", 1, 3, code=207)
    return Observations(mrn, readings)


# PID-8 (HL7 table 0001) to the API's `sex`.
SEXES = {"M": "male", "F": "female", "O": "other", "A": "other", "U": "unknown", "N": "unknown"}
# Where each field of an admission comes from, for an ERR naming it.
ADMISSION_FIELDS = {"mrn": ("PID", 3), "last_name": ("PID", 5), "first_name": ("PID", 5), "birth_date": ("PID", 7),
                    "sex": ("PID", 8), "location": ("PV1", 3), "at": ("PV1", 45)}  # fmt: skip


def admission(message: er7.Message, trigger: str) -> dict[str, Any]:
    """What an ADT message says of the patient, as the patient service's admissions take it."""
    data: dict[str, Any] = {"event": trigger, "mrn": _mrn(message)}
    pid = message.segment("PID")
    assert pid is not None  # _mrn found it
    data["last_name"], data["first_name"] = pid.component(5, 1) or None, pid.component(5, 2) or None
    born = pid.component(7, 1)
    if born:
        if not re.match(r"^\d{8}", born):
            raise Problem("AE", "PID-7 is not a date (YYYYMMDD)", "PID", 1, 7, code=102)
        data["birth_date"] = f"{born[:4]}-{born[4:6]}-{born[6:8]}"
    data["sex"] = SEXES.get(pid.component(8, 1))
    data |= _visit(message)
    return {name: value for name, value in data.items() if value is not None}


def _visit(message: er7.Message) -> dict[str, Any]:
    """PV1-3 (point of care, room, bed) as a location, and PV1-45 (discharge time) as `at`."""
    pv1 = message.segment("PV1")
    if pv1 is None:
        return {}
    ward, room, bed = (pv1.component(3, n) or None for n in (1, 2, 3))
    at = _time(pv1, 45, "PV1", 1)
    return {"location": {"ward": ward, "room": room, "bed": bed} if ward else None, "at": at and at.isoformat()}


def _mrn(message: er7.Message) -> str:
    """PID-3's identifier typed MR, else its first."""
    pid = message.segment("PID")
    identifiers = pid.repetitions(3) if pid is not None else []
    if not identifiers:
        raise Problem("AE", "PID-3 (patient identifier) is required", "PID", 1, 3, code=101)
    chosen = next((rep for rep in identifiers if er7.part(rep, 5) == "MR"), identifiers[0])
    mrn = er7.part(chosen, 1)
    if not mrn or len(mrn) > 64:
        raise Problem("AE", "PID-3 has no usable identifier", "PID", 1, 3, code=101)
    return mrn


def _observe(group: Group, obx: er7.Segment) -> None:
    """Add one OBX's value to its group, unless it is a device or channel row, not a vital, not
    numeric (but ACVPU), or not of a status that is stored."""
    set_id = int(obx.text(1) or 0) or 1
    identifier, kind, status = obx.component(3, 1), obx.text(2), obx.text(11)
    if not kind or status not in STORED_STATUSES:
        return
    if identifier == CONSCIOUSNESS_CODE:
        _keep(group, obx, set_id, "consciousness", _acvpu(obx, set_id))
        return
    if kind not in ("NM", "SN"):
        return
    if identifier in OXYGEN_ABOVE:
        _keep(group, obx, set_id, "on_oxygen", _number(obx, set_id) > OXYGEN_ABOVE[identifier])
        return
    code = CODES.get(identifier)
    if code is None or code.rank >= group.ranks.get(code.field, code.rank + 1):
        return  # not a vital, or one of its codes that goes before this one was read
    group.ranks[code.field] = code.rank
    _keep(group, obx, set_id, code.field, _vital(obx, set_id, code.field))


def _keep(group: Group, obx: er7.Segment, set_id: int, field: str, value: Any) -> None:
    group.values[field], group.where[field] = value, set_id
    group.measured_at = _time(obx, 14, "OBX", set_id) or group.measured_at
    group.source = group.source or obx.component(18, 1) or None


def _vital(obx: er7.Segment, set_id: int, field: str) -> float | int:
    """The OBX's number in the API's unit: `AE` naming OBX-6 for a unit that is not the field's."""
    unit = obx.component(6, 1)
    convert = conversion(field, unit)
    if convert is None:
        raise Problem("AE", f"unit {unit!r} is not one for {field}", "OBX", set_id, 6, code=103)
    value = convert(_number(obx, set_id))
    return value if SIGNS[field].type is float else _whole(value)


def _acvpu(obx: er7.Segment, set_id: int) -> str:
    level = ACVPU.get(obx.component(5, 1).strip().upper())
    if level is None:
        raise Problem("AE", "OBX-5 is not an ACVPU level (A, C, V, P, U)", "OBX", set_id, 5, code=103)
    return level


def _reading(group: Group) -> dict[str, Any]:
    """The group's values as a valid reading: `AE` naming the OBX of a value the API refuses."""
    if group.measured_at is None:
        raise Problem("AE", "no observation time: OBX-14 or OBR-7 is required", "OBR", 1, 7, code=101)
    fields = {**group.values, "measured_at": group.measured_at, "source": group.source}
    try:
        return Reading.model_validate(fields).model_dump(mode="json", exclude_none=True)
    except ValidationError as exc:
        error = exc.errors()[0]
        name = str(error["loc"][0]) if error["loc"] else str((error.get("ctx") or {}).get("field", ""))
        raise Problem("AE", f"{name}: {error['msg']}", "OBX", group.where.get(name, 1), 5, code=102) from None


def _number(obx: er7.Segment, set_id: int) -> float:
    text = obx.text(5)
    try:
        value = Decimal(text.replace("^", ""))  # SN is [comparator]^number: a comparator is refused
    except InvalidOperation:
        raise Problem("AE", f"OBX-5 {text[:20]!r} is not a number", "OBX", set_id, 5, code=102) from None
    if not value.is_finite():
        raise Problem("AE", "OBX-5 is not a finite number", "OBX", set_id, 5, code=102)
    return float(value)


def _whole(value: float) -> int:
    return int(Decimal(str(value)).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def _time(segment: er7.Segment, position: int, name: str, sequence: int) -> datetime | None:
    """An HL7 DTM with its offset (to the minute at least); None when empty. A time without an
    offset is refused: the sender's local time cannot be told from it."""
    text = segment.component(position, 1)
    if not text:
        return None
    match = _DTM.match(text)
    if match is None:
        raise Problem("AE", f"{name}-{position} is not a time with its UTC offset", name, sequence, position, code=102)
    year, month, day, hour, minute, second, fraction, offset = match.groups()
    sign = -1 if offset[0] == "-" else 1
    zone = timezone(sign * timedelta(hours=int(offset[1:3]), minutes=int(offset[3:5])))
    try:
        moment = datetime(int(year), int(month), int(day), int(hour), int(minute), int(second or 0), tzinfo=zone)
    except ValueError:
        raise Problem("AE", f"{name}-{position} is not a valid time", name, sequence, position, code=102) from None
    micro = int((fraction or "0").ljust(6, "0"))
    return (moment + timedelta(microseconds=micro)).astimezone(UTC)
