"""The servers under the stack fail while readings pour in: PostgreSQL crashes, and (the nemesis)
every kind of fault at random. Every acknowledged reading must be stored once, every event applied
once, every patient must show what its stored readings say, and no process may be lost.

`NEMESIS_SEED=<n>` replays a run's schedule (each run prints its seed); `NEMESIS_SECONDS` sets
how long the load lasts (120 by default)."""

import os
import random
import time

from faulty import BOTH, Faulty, create_patients, warm_up
from harness import bearer, eventually, stack_module
from load import WriteLoad
from nemesis import assert_end_state, dead_letters, postgres_crashed, relays_listening, run, schedule
from tally import outbox_event_ids, record_figures

RELAYS = ("patient-relay", "measurement-relay")
SEED = int(os.environ.get("NEMESIS_SEED") or random.SystemRandom().randrange(1, 1_000_000))
LOAD_S = float(os.environ.get("NEMESIS_SECONDS", "120"))


def test_relays_survive_a_postgresql_crash_under_load(faulty: Faulty) -> None:
    """Both relays LISTEN on their databases when PostgreSQL crashes (`stop -m immediate`) under
    load; once it is back they publish again within seconds, without being restarted."""
    warm_up(faulty)
    patient_ids = create_patients(faulty.client, 8)
    eventually(lambda: relays_listening() == 2)
    since = outbox_event_ids("measurement_service")
    pids = {name: faulty.stack.supervisor.pid(name) for name in RELAYS}
    with WriteLoad(faulty.stack.url, bearer(faulty.stack), patient_ids, seed=20261202) as load:
        time.sleep(3)
        with postgres_crashed():
            time.sleep(3)
        time.sleep(5)  # writes go on with PostgreSQL back
    figures = assert_end_state(faulty, load.writes, patient_ids, since)
    record_figures("PostgreSQL crashed under load, relays LISTENing", figures)
    print(f"answers: {dict(load.writes.statuses)}")
    assert load.writes.statuses[503] > 0, "the crash happened while readings were being written"
    # The same processes, still running: they survived, nobody had to restart them.
    assert {name: faulty.stack.supervisor.pid(name) for name in RELAYS} == pids


@BOTH
def test_nemesis(faulty: Faulty) -> None:
    seed = SEED + faulty.replicas
    print(f"nemesis seed {seed}: NEMESIS_SEED={SEED} replays this run")
    warm_up(faulty)
    patient_ids = create_patients(faulty.client, 16)
    since = outbox_event_ids("measurement_service")
    restarts_before = stack_module.restart_counts(faulty.stack)
    plan = schedule(random.Random(seed), window_s=LOAD_S - 10)
    with WriteLoad(faulty.stack.url, bearer(faulty.stack), patient_ids, seed=seed) as load:
        started = time.monotonic()
        run(faulty, plan, started=started)
        time.sleep(max(0.0, started + LOAD_S - time.monotonic()))
    print(f"answers: {dict(load.writes.statuses)}")
    figures = assert_end_state(faulty, load.writes, patient_ids, since)
    record_figures(faulty.named(f"nemesis, seed {seed}"), figures)
    assert dead_letters(faulty) == 0
    # Every process runs, and was restarted only where the nemesis killed it.
    supervised = faulty.stack.supervisor
    eventually(lambda: all(p["statename"] == "RUNNING" for p in supervised.processes()), timeout_s=30)
    restarts = stack_module.restart_counts(faulty.stack)
    restarted = {name: restarts[name] - restarts_before.get(name, 0) for name in restarts}
    assert {name: n for name, n in restarted.items() if n} == dict(faulty.killed), (restarted, faulty.killed)
