"""The ACK a message gets, in original mode (doc/hl7.md): MSA-1 the code, MSA-2 the message's
MSH-10; the sender's MSH-3/4 and MSH-5/6 swapped; an ERR segment saying where a refused
message is wrong."""

import uuid
from datetime import UTC, datetime

from measurement_service.hl7.messages import Header, Problem

_ESCAPES = {"\\": "\\E\\", "|": "\\F\\", "^": "\\S\\", "&": "\\T\\", "~": "\\R\\", "\r": " ", "\n": " "}
# What an ACK says of a message too broken to have a usable MSH.
UNKNOWN = Header("", "", "", "", "", "", "", "2.6")
ERROR_NAMES = {100: "Segment sequence error", 101: "Required field missing", 102: "Data type error",
               103: "Table value not found", 200: "Unsupported message type", 203: "Unsupported version id",
               204: "Unknown key identifier",
               206: "Application record locked", 207: "Application internal error"}  # fmt: skip


def ack(header: Header, code: str, problem: Problem | None = None) -> str:
    """The ACK's text, segments separated by carriage returns."""
    now = datetime.now(UTC).strftime("%Y%m%d%H%M%S+0000")
    msh = (
        f"MSH|^~\\&|{header.receiving_application}|{header.receiving_facility}|{header.sending_application}"
        f"|{header.sending_facility}|{now}||ACK^{header.trigger}^ACK|{uuid.uuid4().hex[:20]}|P|{header.version}"
    )
    segments = [msh, f"MSA|{code}|{header.control_id}"]
    if problem is not None:
        name = ERROR_NAMES.get(problem.code, ERROR_NAMES[207])
        where = f"{problem.segment}^{problem.sequence}^{problem.position}" if problem.segment else ""
        segments.append(f"ERR||{where}|{problem.code}^{name}^HL70357|E||||{escape(problem.text)}")
    return "\r".join(segments) + "\r"


def escape(text: str) -> str:
    """Text safe in a field: HL7's escape sequences for the separators."""
    return "".join(_ESCAPES.get(char, char) for char in text)
