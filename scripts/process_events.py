"""supervisord's event listener (scripts/supervision.py): counts restarts, serves them to Prometheus.

supervisord writes each process state change to this process's standard input and waits for
`RESULT 2\\nOK` on its standard output (the event listener protocol), so standard output carries
nothing else: logs go to standard error.

- `painkiller_process_restarts_total{process}`: a start that follows an exit or a failed start,
  not one asked for (`make up`, `supervisorctl start`).
- `painkiller_process_running{process}`: 1 while supervisord has the process RUNNING.

It also clears up after a process that exited on its own: what it left running in its process
group (supervisord makes each program a group leader) is killed. NGINX's workers and uvicorn's
outlive a SIGKILLed master, holding its port, and would keep the new master from starting.

And it is the watchdog supervisord lacks: supervisord restarts a process that exits, never one
that hangs. Every 5 s (supervisord's TICK_5) it asks each running program's liveness URL (an
API's /health/live, a worker's /live on its metrics port: 503 once its loop has not turned for a
minute; `--liveness`, written by scripts/supervision.py); a program that has not answered 200
`HUNG_AFTER` times in a row is killed with its process group, and supervisord starts it again.
That loses nothing: an unacknowledged event is redelivered, an unmarked outbox row published
again, a request in flight never got its 2xx.

- `painkiller_process_hung_kills_total{process}`: the processes killed so.
"""

import argparse
import contextlib
import json
import logging
import os
import signal
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from prometheus_client import Counter, Gauge, start_http_server
from supervisor import childutils

logger = logging.getLogger("process-events")

RESTARTS = Counter(
    "painkiller_process_restarts_total", "Processes supervisord started again after they died.", ["process"]
)
RUNNING = Gauge("painkiller_process_running", "1 while supervisord has the process running, else 0.", ["process"])
HUNG_KILLS = Counter(
    "painkiller_process_hung_kills_total", "Processes killed because they stopped answering their liveness URL.",
    ["process"],
)  # fmt: skip
RESTARTED_FROM = {"EXITED", "BACKOFF"}  # a start from STOPPED was asked for
LISTENER = "process-events"  # this program's name in supervisord.conf: not a process of the stack
HUNG_AFTER = 3  # liveness checks failed in a row (one per TICK_5): hung for about 15 s
PROBE_TIMEOUT_S = 4.0  # below the tick, so that a round of checks ends before the next
# A program not yet answering is given this long after it runs before its failures count: a start
# slowed by a loaded machine is not a hang.
START_GRACE_S = 60.0


@dataclass
class Watched:
    """A running program the watchdog checks."""

    pid: int
    url: str
    since: float = field(default_factory=time.monotonic)
    answered: bool = False  # it has answered 200 since it started
    failures: int = 0  # checks failed in a row


class Watchdog:
    def __init__(self, liveness: dict[str, str]) -> None:
        self.liveness = liveness  # program -> its liveness URL
        self.running: dict[str, Watched] = {}
        self.pool = ThreadPoolExecutor(max_workers=max(len(liveness), 1), thread_name_prefix="liveness")

    def on_state(self, process: str, state: str, pid: int) -> None:
        if state == "RUNNING" and process in self.liveness and pid > 0:
            self.running[process] = Watched(pid, self.liveness[process])
        else:
            self.running.pop(process, None)

    def on_tick(self) -> None:
        """Check every running program at once; kill those hung HUNG_AFTER checks in a row."""
        watched = list(self.running.items())
        for (process, program), alive in zip(watched, self.pool.map(lambda w: live(w[1].url), watched), strict=True):
            if alive:
                program.answered, program.failures = True, 0
            elif program.answered or time.monotonic() - program.since > START_GRACE_S:
                program.failures += 1
            if program.failures >= HUNG_AFTER:
                self.running.pop(process)
                kill_hung(process, program.pid)


def live(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=PROBE_TIMEOUT_S) as response:
            return bool(response.status == 200)
    except (OSError, ValueError):  # refused, reset, timed out, or an HTTP error status
        return False


def kill_hung(process: str, group: int) -> None:
    logger.error("%s (pid %d) stopped answering its liveness checks: killing it", process, group)
    HUNG_KILLS.labels(process).inc()
    with contextlib.suppress(ProcessLookupError, PermissionError):  # it died meanwhile
        os.killpg(group, signal.SIGKILL)  # the loop is stuck: a SIGTERM would not be handled


def on_event(event: str, payload: str, watchdog: Watchdog) -> None:
    if event == "TICK_5":
        watchdog.on_tick()
        return
    if not event.startswith("PROCESS_STATE_"):
        return
    fields = childutils.get_headers(payload.split("\n", 1)[0])
    process, state = fields["processname"], event.removeprefix("PROCESS_STATE_")
    if process == LISTENER:
        return
    RUNNING.labels(process).set(1 if state == "RUNNING" else 0)
    watchdog.on_state(process, state, int(fields.get("pid", 0)))
    if state == "EXITED":
        kill_leftovers(process, int(fields["pid"]))
    if state == "STARTING" and fields.get("from_state") in RESTARTED_FROM:
        RESTARTS.labels(process).inc()
        logger.warning("%s restarted (it was %s)", process, fields["from_state"])


def kill_leftovers(process: str, group: int) -> None:
    try:
        os.killpg(group, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):  # nothing was left behind
        return
    logger.warning("%s exited and left processes behind: killed them", process)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--liveness", type=Path, help="a JSON object: each program's liveness URL")
    args = parser.parse_args()
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    start_http_server(args.port, addr="127.0.0.1")
    watchdog = Watchdog(json.loads(args.liveness.read_text()) if args.liveness else {})
    while True:
        headers, payload = childutils.listener.wait(sys.stdin, sys.stdout)
        try:
            on_event(headers["eventname"], payload, watchdog)
        finally:
            childutils.listener.ok(sys.stdout)


if __name__ == "__main__":
    main()
