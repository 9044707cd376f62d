"""What an HL7 v2 message says: its header, and for an `ORU^R01` the patient's MRN and one
reading per OBR group, in the API's fields and units (doc/hl7.md).

Parsing is python-hl7's (`hl7`, pinned): the maintained, dependency-free parser of the HL7 v2
pipe format, small enough to read. Its MLLP server is not used: the listener frames blocks
itself, so that it can cap their size, keep the raw bytes and answer a broken block.
"""

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

import hl7
from pydantic import ValidationError

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


def parse(raw: str) -> hl7.Message:
    try:
        return hl7.parse(raw)
    except Exception as exc:  # python-hl7 raises plain exceptions for what is not HL7 at all
        raise Problem("AR", f"not an HL7 v2 message ({type(exc).__name__})", code=100) from None


def header_of(message: hl7.Message) -> Header:
    """MSH's fields, as they are (`check` says whether they are taken)."""
    msh = message.segment("MSH")
    return Header(
        sending_application=_text(msh, 3),
        sending_facility=_text(msh, 4),
        receiving_application=_text(msh, 5),
        receiving_facility=_text(msh, 6),
        control_id=_text(msh, 10),
        message_type=f"{_component(msh, 9, 1)}^{_component(msh, 9, 2)}",
        trigger=_component(msh, 9, 2),
        version=_component(msh, 12, 1),
    )


def check(header: Header, types: tuple[str, ...]) -> None:
    """`AR` for a message without a control id, of a version or a type not taken."""
    if not header.control_id:
        raise Problem("AR", "MSH-10 (message control id) is required", "MSH", 1, 10, code=101)
    if header.version not in VERSIONS:
        raise Problem("AR", f"HL7 version {header.version!r} is not supported", "MSH", 1, 12, code=203)
    if header.message_type not in types:
        raise Problem("AR", f"message type {header.message_type} is not taken", "MSH", 1, 9, code=200)


def observations(message: hl7.Message) -> Observations:
    """The MRN and readings of an ORU^R01; `AE` naming the segment and field of what is wrong."""
    groups: list[Group] = []
    obr_time: datetime | None = None
    mrn = _mrn(message)
    for segment in message:
        kind = str(segment[0])
        if kind == "OBR":
            obr_time = _time(segment, 7, "OBR", int(_text(segment, 1) or 1))
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


def admission(message: hl7.Message, trigger: str) -> dict[str, Any]:
    """What an ADT message says of the patient, as the patient service's admissions take it."""
    pid = message.segment("PID")
    data: dict[str, Any] = {"event": trigger, "mrn": _mrn(message)}
    data["last_name"], data["first_name"] = _component(pid, 5, 1) or None, _component(pid, 5, 2) or None
    born = _component(pid, 7, 1)
    if born:
        if not re.match(r"^\d{8}", born):
            raise Problem("AE", "PID-7 is not a date (YYYYMMDD)", "PID", 1, 7, code=102)
        data["birth_date"] = f"{born[:4]}-{born[4:6]}-{born[6:8]}"
    data["sex"] = SEXES.get(_component(pid, 8, 1))
    data |= _visit(message)
    return {name: value for name, value in data.items() if value is not None}


def _visit(message: hl7.Message) -> dict[str, Any]:
    """PV1-3 (point of care, room, bed) as a location, and PV1-45 (discharge time) as `at`."""
    try:
        pv1 = message.segment("PV1")
    except KeyError:
        return {}
    ward, room, bed = (_component(pv1, 3, n) or None for n in (1, 2, 3))
    at = _time(pv1, 45, "PV1", 1)
    return {"location": {"ward": ward, "room": room, "bed": bed} if ward else None, "at": at and at.isoformat()}


def _mrn(message: hl7.Message) -> str:
    """PID-3's identifier typed MR, else its first."""
    try:
        identifiers = message.segment("PID")[3]
    except (KeyError, IndexError):
        raise Problem("AE", "PID-3 (patient identifier) is required", "PID", 1, 3, code=101) from None
    chosen = next((rep for rep in identifiers if _part(rep, 5) == "MR"), identifiers[0] if identifiers else "")
    mrn = _part(chosen, 1)
    if not mrn or len(mrn) > 64:
        raise Problem("AE", "PID-3 has no usable identifier", "PID", 1, 3, code=101)
    return mrn


def _observe(group: Group, obx: hl7.Segment) -> None:
    """Add one OBX's value to its group, unless it is a device or channel row, not a vital, not
    numeric (but ACVPU), or not of a status that is stored."""
    set_id = int(_text(obx, 1) or 0) or 1
    identifier, kind, status = _component(obx, 3, 1), _text(obx, 2), _text(obx, 11)
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


def _keep(group: Group, obx: hl7.Segment, set_id: int, field: str, value: Any) -> None:
    group.values[field], group.where[field] = value, set_id
    group.measured_at = _time(obx, 14, "OBX", set_id) or group.measured_at
    group.source = group.source or _component(obx, 18, 1) or None


def _vital(obx: hl7.Segment, set_id: int, field: str) -> float | int:
    """The OBX's number in the API's unit: `AE` naming OBX-6 for a unit that is not the field's."""
    unit = _component(obx, 6, 1)
    convert = conversion(field, unit)
    if convert is None:
        raise Problem("AE", f"unit {unit!r} is not one for {field}", "OBX", set_id, 6, code=103)
    value = convert(_number(obx, set_id))
    return value if SIGNS[field].type is float else _whole(value)


def _acvpu(obx: hl7.Segment, set_id: int) -> str:
    level = ACVPU.get(_component(obx, 5, 1).strip().upper())
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


def _number(obx: hl7.Segment, set_id: int) -> float:
    text = _text(obx, 5)
    try:
        value = Decimal(text.replace("^", ""))  # SN is [comparator]^number: a comparator is refused
    except InvalidOperation:
        raise Problem("AE", f"OBX-5 {text[:20]!r} is not a number", "OBX", set_id, 5, code=102) from None
    if not value.is_finite():
        raise Problem("AE", "OBX-5 is not a finite number", "OBX", set_id, 5, code=102)
    return float(value)


def _whole(value: float) -> int:
    return int(Decimal(str(value)).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def _time(segment: hl7.Segment, position: int, name: str, sequence: int) -> datetime | None:
    """An HL7 DTM with its offset (to the minute at least); None when empty. A time without an
    offset is refused: the sender's local time cannot be told from it."""
    text = _component(segment, position, 1)
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


def _text(segment: hl7.Segment, position: int) -> str:
    try:
        return str(segment[position])
    except IndexError:
        return ""


def _component(segment: hl7.Segment, position: int, component: int) -> str:
    """Component `component` (from 1) of the field's first repetition."""
    try:
        return _part(segment[position][0], component)
    except IndexError:
        return ""


def _part(value: Any, component: int) -> str:
    """Component `component` (from 1) of a parsed field repetition, or of a plain string."""
    if isinstance(value, str):
        return value if component == 1 else ""
    try:
        return str(value[component - 1])
    except IndexError:
        return ""
