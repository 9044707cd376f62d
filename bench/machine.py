"""What a reading costs the whole machine: the CPU of every process that serves it, by role.

The processes (from /proc): the stack's own, by supervisord program (APIs, relays, consumers, the
dispatcher, NGINX with its workers, supervisord itself), PostgreSQL (every `postgres` process:
its backends are where the statements run), RabbitMQ (the Erlang VM and its helpers) and the
baseline app. The load generator and the benchmark itself are not counted.

A scenario's cost is the CPU those processes used from the start of its load until the machine is
back at its rest rate (the relays and consumers finish the events after the last response), minus
the rest rate over that time, divided by the readings stored.
"""

import os
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
RABBITMQ = {"beam.smp", "erl_child_setup", "epmd", "inet_gethost"}
SETTLED_ABOVE_REST = 0.02  # of a core: back at rest when the machine is within this of its rest rate
SETTLE_LIMIT_S = 120.0

Usage = dict[str, float]  # role -> CPU seconds used so far


@dataclass(frozen=True)
class Cost:
    per_reading_ms: dict[str, float]  # role -> CPU ms per reading, rest subtracted
    settled_s: float  # from the end of the load until the machine was back at rest

    @property
    def total_ms(self) -> float:
        return sum(self.per_reading_ms.values())


def _processes() -> dict[int, tuple[int, str, float]]:
    """pid -> (parent pid, command name, CPU seconds used)."""
    found = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except (FileNotFoundError, ProcessLookupError):
            continue
        name, fields = text[text.index("(") + 1 : text.rindex(")")], text.rsplit(")", 1)[1].split()
        found[int(stat.parent.name)] = (int(fields[1]), name, (int(fields[11]) + int(fields[12])) / CLOCK_TICKS)
    return found


class Machine:
    """CPU use by role; `roots` gives the processes whose trees are roles (pid -> role)."""

    def __init__(self, roots: Callable[[], dict[int, str]]) -> None:
        self.roots = roots

    def usage(self) -> Usage:
        processes = _processes()
        roles = dict(self.roots())
        for pid in list(roles):  # the supervisor that runs the stack's processes
            parent = processes.get(pid, (0, "", 0.0))[0]
            if parent > 1 and parent not in roles:
                roles[parent] = "supervisord"
        used: Usage = defaultdict(float)
        for pid, (_, name, cpu) in processes.items():
            role = self._role(pid, processes, roles) or (
                "PostgreSQL" if name == "postgres" else "RabbitMQ" if name in RABBITMQ else None
            )
            if role is not None:
                used[role] += cpu
        return dict(used)

    @staticmethod
    def _role(pid: int, processes: dict[int, tuple[int, str, float]], roles: dict[int, str]) -> str | None:
        """The role of the nearest ancestor (or the process itself) that is a root."""
        while pid > 1:
            if pid in roles:
                return roles[pid]
            pid = processes.get(pid, (0, "", 0.0))[0]
        return None

    def rest_rate(self, seconds: float = 10.0) -> Usage:
        """CPU seconds per second of each role while nothing is asked of the stack."""
        before, started = self.usage(), time.monotonic()
        time.sleep(seconds)
        after, elapsed = self.usage(), time.monotonic() - started
        return {role: max(0.0, (after.get(role, 0.0) - before.get(role, 0.0)) / elapsed) for role in after}

    def settle(self, rest: Usage) -> tuple[Usage, float]:
        """Wait until the machine is back at its rest rate (or SETTLE_LIMIT_S passed); the usage
        then, and when (monotonic)."""
        waited_from, rest_total = time.monotonic(), sum(rest.values())
        previous, at = self.usage(), time.monotonic()
        while time.monotonic() - waited_from < SETTLE_LIMIT_S:
            time.sleep(1.0)
            now, now_at = self.usage(), time.monotonic()
            rate = (sum(now.values()) - sum(previous.values())) / (now_at - at)
            previous, at = now, now_at
            if rate <= rest_total + SETTLED_ABOVE_REST:
                break
        return previous, at

    def cost(self, before: Usage, started: float, rest: Usage, readings: int) -> Cost:
        """The cost per reading of a load that began at `started` (monotonic) with `before`:
        waits until the machine is back at rest first."""
        load_ended = time.monotonic()
        previous, at = self.settle(rest)
        elapsed = at - started
        per_reading = {
            role: max(0.0, previous.get(role, 0.0) - before.get(role, 0.0) - rest.get(role, 0.0) * elapsed)
            * 1000
            / max(readings, 1)
            for role in previous
        }
        return Cost(per_reading, settled_s=at - load_ended)
