"""The supervisor's watchdog (scripts/process_events.py): a program that stops answering its
liveness URL is killed after HUNG_AFTER checks in a row, but not while it is still starting."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))

import process_events  # noqa: E402
import stack  # noqa: E402


def sleeper() -> subprocess.Popen[bytes]:
    return subprocess.Popen(["sleep", "60"], start_new_session=True)  # a group leader, as supervisord's programs


def test_a_program_that_never_answered_is_given_its_start_grace_then_killed() -> None:
    program, deaf = sleeper(), f"http://127.0.0.1:{stack.free_port()}/live"  # nothing listens there
    watchdog = process_events.Watchdog({"worker": deaf})
    watchdog.on_state("worker", "RUNNING", program.pid)
    for _ in range(process_events.HUNG_AFTER + 1):
        watchdog.on_tick()
    assert program.poll() is None  # still starting: not a hang yet
    watchdog.running["worker"].since -= process_events.START_GRACE_S
    for _ in range(process_events.HUNG_AFTER):
        watchdog.on_tick()
    assert program.wait(timeout=5) == -9
    assert "worker" not in watchdog.running  # the next one is watched from its own RUNNING


def test_a_program_stopped_or_not_watched_is_left_alone() -> None:
    program = sleeper()
    try:
        watchdog = process_events.Watchdog({"worker": f"http://127.0.0.1:{stack.free_port()}/live"})
        watchdog.on_state("worker", "RUNNING", program.pid)
        watchdog.on_state("worker", "STOPPING", program.pid)
        watchdog.on_state("nginx", "RUNNING", program.pid)  # no liveness URL
        for _ in range(process_events.HUNG_AFTER):
            watchdog.on_tick()
        assert program.poll() is None
    finally:
        program.kill()
        program.wait()
