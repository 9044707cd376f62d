"""Every process of the native stack runs under supervisord, which restarts any that dies.

Why supervisord: it is the boring, long-proven supervisor for a set of processes on one machine
with no init system of ours (containers and CI machines have no systemd), it installs from PyPI
into the venv (pinned in requirements-dev.txt), and it answers over XML-RPC on a socket, which is
how `make status` and the tests ask it what runs. Compose and Kubernetes keep their own restart
policies (doc/operations.md).

How it restarts: a process that exits for any reason but a stop asked of supervisord is started
again at once; one that dies within `START_S` of starting counted as a failed start, and is
retried after 1, 2, 3... seconds (supervisord's back-off), practically without end: a worker that
gives up while a database is down would lose the hospital its events for good. Each restart is
counted by the event listener (scripts/process_events.py) in `painkiller_process_restarts_total`.
A process that hangs instead of exiting is killed by the same listener once it stops answering its
liveness URL (`Program.live`), and so restarted too.
"""

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import xmlrpc.client
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from process_events import LISTENER
from supervisor.xmlrpc import SupervisorTransport

SCRIPTS = Path(__file__).resolve().parent
START_S = 5  # a process must run this long to count as started; dying sooner backs off
START_RETRIES = 1000  # failed starts in a row before supervisord gives up (FATAL): about a week
STOP_WAIT_S = 20  # SIGTERM, then SIGKILL after this (the dispatcher waits 15 s for its senders)
LOG_BYTES, LOG_BACKUPS = 50 * 1024 * 1024, 5


@dataclass(frozen=True)
class Program:
    """One process to keep running: its command, what its environment adds, where it logs."""

    name: str
    command: list[str]
    env: dict[str, str]
    log: Path
    live: str | None = None  # the URL that answers 200 while it is not hung (the watchdog's)


def _env_value(value: str) -> str:
    """A value for supervisord's `environment=`: quoted (its parser strips the quotes, reads no
    escapes), `%` doubled (it expands `%(name)s`)."""
    quote = '"' if '"' not in value else "'"
    if quote in value or "\n" in value:
        raise ValueError("an environment value supervisord cannot hold (both quotes, or a newline)")
    return quote + value.replace("%", "%%") + quote


def _command(args: list[str]) -> str:
    return subprocess.list2cmdline(args).replace("%", "%%")


def _program(program: Program, priority: int) -> str:
    environment = ",".join(f"{key}={_env_value(value)}" for key, value in program.env.items())
    return f"""
[program:{program.name}]
command={_command(program.command)}
environment={environment}
priority={priority}
autostart=true
autorestart=true
startsecs={START_S}
startretries={START_RETRIES}
stopsignal=TERM
stopwaitsecs={STOP_WAIT_S}
stopasgroup=true
killasgroup=true
redirect_stderr=true
stdout_logfile={program.log}
stdout_logfile_maxbytes={LOG_BYTES}
stdout_logfile_backups={LOG_BACKUPS}
"""


class Supervisor:
    """The supervisord of one stack: its files live in `run_dir`."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self.config = run_dir / "supervisord.conf"
        self.socket = run_dir / "supervisor.sock"
        self.pid_file = run_dir / "supervisord.pid"
        self._process: subprocess.Popen[bytes] | None = None

    def write_config(self, programs: list[Program], *, metrics_port: int) -> None:
        liveness = self.run_dir / "liveness.json"
        liveness.write_text(json.dumps({p.name: p.live for p in programs if p.live}, indent=2) + "\n")
        listener = [sys.executable, str(SCRIPTS / "process_events.py"), "--port", str(metrics_port),
                    "--liveness", str(liveness)]  # fmt: skip
        sections = [
            f"""[unix_http_server]
file={self.socket}
chmod=0700

[supervisord]
logfile={self.run_dir / "supervisord.log"}
logfile_maxbytes={LOG_BYTES}
pidfile={self.pid_file}
childlogdir={self.run_dir}
nodaemon=true

[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface

[supervisorctl]
serverurl=unix://{self.socket}

[eventlistener:{LISTENER}]
command={_command(listener)}
events=PROCESS_STATE,TICK_5
; events wait here while a round of liveness checks waits for a hung program (up to 4 s)
buffer_size=100
priority=1
autorestart=true
startsecs=1
startretries={START_RETRIES}
stdout_logfile=NONE
stderr_logfile={self.run_dir / "process-events.log"}
"""
        ]
        sections += [_program(program, priority) for priority, program in enumerate(programs, start=10)]
        self.config.write_text("".join(sections))
        self.config.chmod(0o600)  # it holds the database and broker passwords

    def start(self, env: dict[str, str]) -> None:
        """supervisord in its own session, so that it outlives `make up`; returns once it answers."""
        self._process = subprocess.Popen(
            [sys.executable, "-m", "supervisor.supervisord", "-c", str(self.config)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=(self.run_dir / "supervisord.log").open("ab"),
            start_new_session=True,
        )
        deadline = time.monotonic() + 30
        while not self.answering():
            if self._process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"supervisord did not start: see {self.run_dir / 'supervisord.log'}")
            time.sleep(0.1)

    def answering(self) -> bool:
        try:
            return self.rpc.supervisor.getState()["statename"] == "RUNNING"
        except (OSError, xmlrpc.client.Error):
            return False

    @property
    def rpc(self) -> Any:
        transport = SupervisorTransport(None, None, f"unix://{self.socket}")
        return xmlrpc.client.ServerProxy("http://127.0.0.1", transport=transport)

    def processes(self) -> list[dict[str, Any]]:
        """supervisord's record of each program: name, statename, pid, start, now, description..."""
        return [info for info in self.rpc.supervisor.getAllProcessInfo() if info["group"] != LISTENER]

    def info(self, name: str) -> dict[str, Any]:
        info: dict[str, Any] = self.rpc.supervisor.getProcessInfo(name)
        return info

    def pid(self, name: str) -> int:
        return int(self.info(name)["pid"])

    def stop_program(self, name: str) -> None:
        """Stopped on purpose (SIGTERM): not restarted until `start_program`."""
        self.rpc.supervisor.stopProcess(name)

    def start_program(self, name: str) -> None:
        self.rpc.supervisor.startProcess(name, False)

    def wait_running(self, name: str, *, not_pid: int = 0, timeout_s: float = 30) -> int:
        """The pid of `name` once it runs again as a process other than `not_pid`."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            info = self.info(name)
            if info["statename"] in ("STARTING", "RUNNING") and info["pid"] not in (0, not_pid):
                return int(info["pid"])
            time.sleep(0.05)
        raise RuntimeError(f"{name} was not running again within {timeout_s:.0f}s")

    def shutdown(self, *, timeout_s: float = 60) -> None:
        """Stop every program (SIGTERM, then SIGKILL after STOP_WAIT_S), then supervisord."""
        pid = self._process.pid if self._process else _read_pid(self.pid_file)
        if pid is None or not _alive(pid):
            return
        children = []
        with contextlib.suppress(OSError, xmlrpc.client.Error):
            children = [info["pid"] for info in self.processes() if info["pid"]]
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        while _alive(pid) and time.monotonic() < deadline:
            if self._process is not None:
                self._process.poll()  # reaps it, when it is our child
            time.sleep(0.1)
        if _alive(pid):  # stuck: take it, and what it ran, down hard
            for stuck in [pid, *children]:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(stuck, signal.SIGKILL)
        if self._process is not None:
            self._process.wait()


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None


def _alive(pid: int) -> bool:
    """Running, and not a zombie waiting to be reaped."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "\nState:\tZ" not in status
