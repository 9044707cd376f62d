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
"""

import argparse
import logging
import os
import signal
import sys

from prometheus_client import Counter, Gauge, start_http_server
from supervisor import childutils

logger = logging.getLogger("process-events")

RESTARTS = Counter(
    "painkiller_process_restarts_total", "Processes supervisord started again after they died.", ["process"]
)
RUNNING = Gauge("painkiller_process_running", "1 while supervisord has the process running, else 0.", ["process"])
RESTARTED_FROM = {"EXITED", "BACKOFF"}  # a start from STOPPED was asked for
LISTENER = "process-events"  # this program's name in supervisord.conf: not a process of the stack


def on_event(event: str, payload: str) -> None:
    if not event.startswith("PROCESS_STATE_"):
        return
    fields = childutils.get_headers(payload.split("\n", 1)[0])
    process, state = fields["processname"], event.removeprefix("PROCESS_STATE_")
    if process == LISTENER:
        return
    RUNNING.labels(process).set(1 if state == "RUNNING" else 0)
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
    args = parser.parse_args()
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    start_http_server(args.port, addr="127.0.0.1")
    while True:
        headers, payload = childutils.listener.wait(sys.stdin, sys.stdout)
        try:
            on_event(headers["eventname"], payload)
        finally:
            childutils.listener.ok(sys.stdout)


if __name__ == "__main__":
    main()
