"""Every process of the stack is supervised: one killed with SIGKILL is running and answering
again within 5 s, its restart counted, and `make status` lists it with its state and uptime; one
that hangs is killed and started again, and the work it held is done."""

import os
import signal
import time

import httpx
import pytest
import stack as stack_module
from harness import eventually

BACK_WITHIN_S = 5.0
# A hang is noticed after 3 failed liveness checks, one each 5 s, each given 4 s (process_events.py).
HUNG_NOTICED_S = 45.0


def answering(stack: stack_module.Stack, name: str) -> bool:
    """The process does its job's first step: an API answers on its own port, a worker's loop is
    alive (/live), NGINX proxies."""
    url = stack.url + "/api/v1/patient/health/live" if name == "nginx" else stack_module.live_url(stack, name)
    assert url is not None, name
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.TransportError:
        return False


def in_group(group: int) -> bool:
    """Whether any process is left in that process group."""
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.parametrize("name", [*stack_module.instances(1), "nginx"])
def test_a_process_killed_is_back_within_5_s(stack: stack_module.Stack, name: str) -> None:
    before = stack_module.restart_counts(stack).get(name, 0)
    pid = stack.supervisor.pid(name)
    killed_at = time.monotonic()
    os.kill(pid, signal.SIGKILL)
    stack.supervisor.wait_running(name, not_pid=pid, timeout_s=BACK_WITHIN_S)
    # Nothing of the killed one lives on (NGINX's workers would, holding its port and answering).
    eventually(lambda: not in_group(pid), timeout_s=BACK_WITHIN_S)
    eventually(lambda: answering(stack, name), timeout_s=BACK_WITHIN_S, interval_s=0.05)
    back_after = time.monotonic() - killed_at
    print(f"{name}: back and answering {back_after:.2f} s after its SIGKILL")
    assert back_after < BACK_WITHIN_S
    eventually(lambda: stack_module.restart_counts(stack).get(name, 0) == before + 1, timeout_s=5)


def test_status_lists_every_process_with_its_state_uptime_and_restarts(
    stack: stack_module.Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    eventually(lambda: all(p["statename"] == "RUNNING" for p in stack.supervisor.processes()), timeout_s=15)
    assert stack_module.status(stack) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["process", "state", "pid", "uptime", "restarts"]
    rows = {line.split()[0]: line.split()[1:] for line in lines[1:]}
    assert set(rows) == {*stack_module.instances(1), "nginx"}
    for name, (state, pid, uptime, restarts) in rows.items():
        assert state == "RUNNING" and int(pid) == stack.supervisor.pid(name)
        hours, minutes, seconds = (int(part) for part in uptime.split(":"))
        assert 0 < hours * 3600 + minutes * 60 + seconds < 3600
        assert float(restarts) == stack_module.restart_counts(stack).get(name, 0)


STOPPED_WITHIN_S = 5.0
WORKERS = [name for name in stack_module.instances(1) if not name.endswith("api")]


@pytest.mark.parametrize("name", WORKERS)
def test_a_worker_asked_to_stop_ends_within_5_s(stack: stack_module.Stack, name: str) -> None:
    """SIGTERM ends a worker promptly, long before supervisord's SIGKILL: its loops wake to see it,
    even an idle webhook sender that would otherwise wait up to its 30 s safety poll."""
    time.sleep(1)  # idle: every loop blocked in its longest wait
    started = time.monotonic()
    stack.supervisor.stop_program(name)  # returns once the process has ended
    took = time.monotonic() - started
    stack.supervisor.start_program(name)
    eventually(lambda: answering(stack, name), timeout_s=BACK_WITHIN_S)
    print(f"{name}: stopped {took:.2f} s after its SIGTERM")
    assert took < STOPPED_WITHIN_S


def test_a_hung_process_is_killed_and_started_again_and_its_work_done(
    stack: stack_module.Stack, api: httpx.Client
) -> None:
    patient = api.post("/api/v1/patient", json={"first_name": "Hung", "last_name": "Worker", "age": 60}).json()
    hung = {name: stack.supervisor.pid(name) for name in ("patient-consumer", "measurement-api")}
    # The watchdog counts failures of a program it has seen answer (a slow start is not a hang):
    # running, then a round of checks (one each 5 s) since.
    eventually(lambda: all(stack.supervisor.info(name)["statename"] == "RUNNING" for name in hung), timeout_s=30)
    time.sleep(6)
    kills_before = stack_module.listener_counts(stack, "painkiller_process_hung_kills_total")
    # SIGSTOP: alive to supervisord, deaf to everything else, as a deadlocked process is.
    os.kill(hung["patient-consumer"], signal.SIGSTOP)
    posted = api.post(f"/api/v1/patient/{patient['id']}/measurements", json={"heart_rate_bpm": 123})
    assert posted.status_code == 201  # its event waits in the queue of a consumer that hangs
    os.kill(hung["measurement-api"], signal.SIGSTOP)
    for name, pid in hung.items():
        stack.supervisor.wait_running(name, not_pid=pid, timeout_s=HUNG_NOTICED_S)

    def applied() -> bool:
        latest = api.get(f"/api/v1/patient/{patient['id']}").json()["latest_vitals"]
        return bool(latest.get("heart_rate_bpm", {}).get("value") == 123)

    eventually(applied, timeout_s=30)
    eventually(lambda: answering(stack, "measurement-api"), timeout_s=30)
    again = api.post(f"/api/v1/patient/{patient['id']}/measurements", json={"spo2_percent": 97})
    assert again.status_code == 201
    kills = stack_module.listener_counts(stack, "painkiller_process_hung_kills_total")
    assert {name: kills.get(name, 0) - kills_before.get(name, 0) for name in hung} == dict.fromkeys(hung, 1)
