"""HL7 v2 messages for the tests, and an MLLP client over a raw socket (doc/hl7.md).

`pcd01` is shaped like the IHE PCD-01 examples (IHE PCD Technical Framework, and the Open eHealth
IPF project's pcd01 test resources): an MDS/VMD/channel hierarchy in OBX-4, device and channel
rows with an empty OBX-2, MDC codes and MDC units, times with their offsets. `loinc` is a plain
HL7 v2 ORU with LOINC codes and UCUM units, as an older integration engine sends.
"""

import socket
import ssl
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

START, END = b"\x0b", b"\x1c\x0d"


def stamp(moment: datetime) -> str:
    """An HL7 DTM with its offset, to the second."""
    return moment.strftime("%Y%m%d%H%M%S%z")


def pcd01(control_id: str, mrn: str, *, at: datetime | None = None, version: str = "2.6",
          observations: list[str] | None = None) -> str:  # fmt: skip
    """An ORU^R01 from a bedside monitor with a whole NEWS2 set's numeric part, or `observations`
    (OBX segments after the device rows)."""
    at = at or datetime.now(UTC) - timedelta(minutes=1)
    when = stamp(at.astimezone(timezone(timedelta(hours=1))))  # the ward's local time
    obx = observations if observations is not None else [
        f"OBX|4|NM|150456^MDC_PULS_OXIM_SAT_O2^MDC|1.1.1.1|96|262688^MDC_DIM_PERCENT^MDC|||||R|||{when}",
        f"OBX|5|NM|149530^MDC_PULS_OXIM_PULS_RATE^MDC|1.1.1.2|72|264864^MDC_DIM_BEAT_PER_MIN^MDC|||||R|||{when}",
        f"OBX|6|NM|150301^MDC_PRESS_CUFF_SYS^MDC|1.2.1.1|15.6|265987^MDC_DIM_KILO_PASCAL^MDC|||||R|||{when}",
        f"OBX|7|NM|150302^MDC_PRESS_CUFF_DIA^MDC|1.2.1.2|10.4|265987^MDC_DIM_KILO_PASCAL^MDC|||||R|||{when}",
        f"OBX|8|NM|150303^MDC_PRESS_CUFF_MEAN^MDC|1.2.1.3|12.1|265987^MDC_DIM_KILO_PASCAL^MDC|||||R|||{when}",
        f"OBX|9|NM|151562^MDC_RESP_RATE^MDC|1.3.1.1|18|264928^MDC_DIM_RESP_PER_MIN^MDC|||||R|||{when}",
        f"OBX|10|NM|150364^MDC_TEMP_BODY^MDC|1.4.1.1|99.5|266560^MDC_DIM_FAHR^MDC|||||R|||{when}",
        f"OBX|11|NM|147842^MDC_ECG_HEART_RATE^MDC|1.5.1.1|75|264864^MDC_DIM_BEAT_PER_MIN^MDC|||||X|||{when}",
    ]  # fmt: skip
    return _segments(
        f"MSH|^~\\&|AcmeMonitor^0012345678ABCDEF^EUI-64|ICU-4|PAINKILLER|HOSP|{when}||ORU^R01^ORU_R01|{control_id}"
        f"|P|{version}|||NE|AL||UNICODE UTF-8|||IHE_PCD_001^IHE PCD^1.3.6.1.4.1.19376.1.6.1.1.1^ISO",
        f"PID|||{mrn}^^^HOSP^MR~990011^^^NHS^NH||Smith^Ada^^^^^L",
        "PV1||I|ICU^4^2",
        f"OBR|1|AB12345^AcmeMonitor|CD12345^AcmeMonitor|182777000^monitoring of patient^SNOMED-CT|||{when}",
        "OBX|1||69965^MDC_DEV_MON_PHYSIO_MULTI_PARAM_MDS^MDC|1.0.0.0|||||||X",
        "OBX|2||69642^MDC_DEV_ANALY_SAT_O2_VMD^MDC|1.1.0.0|||||||X",
        "OBX|3||70675^MDC_DEV_ANALY_PRESS_BLD_CHAN^MDC|1.2.1.0|||||||X",
        *obx,
    )


def news2_set(control_id: str, mrn: str, *, at: datetime | None = None) -> str:
    """A PCD-01 ORU^R01 with every NEWS2 parameter: respiration 22, SpO2 95 on oxygen (2 L/min),
    systolic 108, pulse 104, new confusion, temperature 38.3: NEWS2 2+1+2+1+1+3+1 = 11."""
    when = stamp((at or datetime.now(UTC) - timedelta(minutes=1)).astimezone(UTC))
    return pcd01(control_id, mrn, at=at, observations=[
        f"OBX|4|NM|151562^MDC_RESP_RATE^MDC|1.1.1.1|22|264928^MDC_DIM_RESP_PER_MIN^MDC|||||F|||{when}",
        f"OBX|5|NM|150456^MDC_PULS_OXIM_SAT_O2^MDC|1.2.1.1|95|262688^MDC_DIM_PERCENT^MDC|||||F|||{when}",
        f"OBX|6|NM|3151-8^Inhaled oxygen flow rate^LN||2|L/min^^UCUM|||||F|||{when}",
        f"OBX|7|NM|150301^MDC_PRESS_CUFF_SYS^MDC|1.3.1.1|108|266016^MDC_DIM_MMHG^MDC|||||F|||{when}",
        f"OBX|8|NM|150302^MDC_PRESS_CUFF_DIA^MDC|1.3.1.2|70|266016^MDC_DIM_MMHG^MDC|||||F|||{when}",
        f"OBX|9|NM|149530^MDC_PULS_OXIM_PULS_RATE^MDC|1.2.1.2|104|264864^MDC_DIM_BEAT_PER_MIN^MDC|||||F|||{when}",
        f"OBX|10|CWE|67775-7^Level of responsiveness^LN||C^New confusion^ACVPU||||||F|||{when}",
        f"OBX|11|NM|150364^MDC_TEMP_BODY^MDC|1.4.1.1|38.3|268192^MDC_DIM_DEGC^MDC|||||F|||{when}",
    ])  # fmt: skip


def loinc(control_id: str, mrn: str, *, at: datetime | None = None) -> str:
    """A plain ORU^R01 (HL7 2.3) coded in LOINC with UCUM units."""
    when = stamp((at or datetime.now(UTC) - timedelta(minutes=2)).astimezone(UTC))
    return _segments(
        f"MSH|^~\\&|LEGACY|WARD-7|PAINKILLER|HOSP|{when}||ORU^R01|{control_id}|P|2.3",
        f"PID|1||{mrn}||Jones^Bob",
        f"OBR|1|||vitals|||{when}",
        "OBX|1|NM|8867-4^Heart rate^LN||88|/min|||||F",
        "OBX|2|NM|9279-1^Respiratory rate^LN||21|/min|||||F",
        "OBX|3|NM|8310-5^Body temperature^LN||38.4|Cel|||||F",
        "OBX|4|ST|8302-2^Comment^LN||taken sitting|||||F",
    )


def adt(trigger: str, control_id: str, mrn: str, *, bed: str = "4B^12^2", born: str = "19601210",
        discharged: str = "") -> str:  # fmt: skip
    """An ADT message from the patient administration system (HL7 2.5): PID and PV1."""
    now = stamp(datetime.now(UTC))
    pv1 = f"PV1||I|{bed}" + ("|" * 42 + discharged if discharged else "")
    return _segments(
        f"MSH|^~\\&|PAS|HOSP|PAINKILLER|HOSP|{now}||ADT^{trigger}^ADT_A01|{control_id}|P|2.5",
        f"EVN|{trigger}|{now}",
        f"PID|||{mrn}^^^HOSP^MR||Lovelace^Ada^^^^^L||{born}|F",
        pv1,
    )


def _segments(*segments: str) -> str:
    return "\r".join(segments) + "\r"


def frame(message: str) -> bytes:
    return START + message.encode() + END


class MllpClient:
    """A sender's side of MLLP over a raw socket: send bytes as they are, read ACKs as they come."""

    def __init__(self, port: int, *, tls: bool = False, certificate: Path | None = None, timeout_s: float = 15) -> None:
        sock = socket.create_connection(("127.0.0.1", port), timeout=timeout_s)
        if tls:
            context = ssl.create_default_context()
            context.check_hostname, context.verify_mode = False, ssl.CERT_NONE  # the dev certificate
            if certificate is not None:  # a PEM holding the client's key and certificate
                context.load_cert_chain(certificate)
            sock = context.wrap_socket(sock)
        self.sock, self.buffer = sock, b""

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def ack(self) -> dict[str, list[str]]:
        """The next ACK, as {segment name: its fields}; {} if the connection closed first."""
        while END not in self.buffer:
            chunk = self.sock.recv(65536)
            if not chunk:
                return {}
            self.buffer += chunk
        block, self.buffer = self.buffer.split(END, 1)
        segments = block.lstrip(START).decode().split("\r")
        return {segment.split("|")[0]: segment.split("|") for segment in segments if segment}

    def exchange(self, message: str) -> dict[str, list[str]]:
        self.send(frame(message))
        return self.ack()

    def close(self) -> None:
        self.sock.close()
