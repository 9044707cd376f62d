"""HL7 v2 over MLLP as bedside monitors send it: each connection sends a PCD-01 ORU^R01, waits for
its ACK, and sends the next (bench/run.py's HL7 scenario)."""

import asyncio
import time
from dataclasses import dataclass, field

from painkiller_testing.hl7 import END, frame, pcd01

VITALS_AT = "20261126083000+0000"  # one time for all: each message's source (OBX-18) is its own


@dataclass
class Tally:
    sent: int = 0
    not_aa: int = 0
    errors: int = 0
    latencies: list[float] = field(default_factory=list)


def message(connection: int, n: int, mrn: str) -> bytes:
    """A PCD-01 ORU^R01 from monitor `connection`, its `n`th: the JSON POST scenario's three vitals
    (bench/run.py), so that the two differ only in what is in front of the same pipeline."""
    source = f"bench-mllp-{connection}-{n}"
    observations = [
        f"OBX|4|NM|150456^MDC_PULS_OXIM_SAT_O2^MDC|1.1.1.1|97|262688^MDC_DIM_PERCENT^MDC|||||R|||{VITALS_AT}||||{source}",
        f"OBX|5|NM|147842^MDC_ECG_HEART_RATE^MDC|1.2.1.1|72|264864^MDC_DIM_BEAT_PER_MIN^MDC|||||R|||{VITALS_AT}",
        f"OBX|6|NM|150344^MDC_TEMP^MDC|1.4.1.1|36.8|268192^MDC_DIM_DEGC^MDC|||||R|||{VITALS_AT}",
    ]  # fmt: skip
    return frame(pcd01(f"B{connection}-{n}", mrn, observations=observations))


async def monitor(port: int, connection: int, mrns: list[str], deadline: float, tally: Tally) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    n = 0
    try:
        while time.monotonic() < deadline:
            n += 1
            started = time.perf_counter()
            writer.write(message(connection, n, mrns[(connection + n * 16) % len(mrns)]))
            ack = await reader.readuntil(END)
            tally.latencies.append(time.perf_counter() - started)
            tally.sent += 1
            tally.not_aa += b"MSA|AA|" not in ack
    except (ConnectionError, asyncio.IncompleteReadError):
        tally.errors += 1
    finally:
        writer.close()


def run(port: int, mrns: list[str], *, connections: int, seconds: float) -> Tally:
    tally = Tally()

    async def all_monitors() -> None:
        deadline = time.monotonic() + seconds
        await asyncio.gather(*(monitor(port, c, mrns, deadline, tally) for c in range(connections)))

    asyncio.run(all_monitors())
    return tally
