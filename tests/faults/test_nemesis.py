"""The servers under the stack fail while readings pour in: PostgreSQL crashes, and (the nemesis)
every kind of fault at random. Every acknowledged reading must be stored once, every event applied
once, every patient must show what its stored readings say, and no process may be lost."""

import time

from faulty import Faulty, create_patients, warm_up
from harness import bearer, eventually
from load import WriteLoad
from nemesis import assert_end_state, postgres_crashed, relays_listening
from tally import outbox_event_ids, record_figures

RELAYS = ("patient-relay", "measurement-relay")


def test_relays_survive_a_postgresql_crash_under_load(faulty: Faulty) -> None:
    """Both relays LISTEN on their databases when PostgreSQL crashes (`stop -m immediate`) under
    load; once it is back they publish again within seconds, without being restarted."""
    warm_up(faulty)
    patient_ids = create_patients(faulty.client, 8)
    eventually(lambda: relays_listening() == 2)
    since = outbox_event_ids("measurement_service")
    pids = {name: faulty.stack.processes[name].pid for name in RELAYS}
    with WriteLoad(faulty.stack.url, bearer(faulty.stack), patient_ids, seed=20261202) as load:
        time.sleep(3)
        with postgres_crashed():
            time.sleep(3)
        time.sleep(5)  # writes go on with PostgreSQL back
    figures = assert_end_state(faulty, load.writes, patient_ids, since)
    record_figures("PostgreSQL crashed under load, relays LISTENing", figures)
    print(f"answers: {dict(load.writes.statuses)}")
    assert load.writes.statuses[503] > 0, "the crash happened while readings were being written"
    assert {name: faulty.stack.processes[name].pid for name in RELAYS} == pids
    assert all(faulty.stack.processes[name].poll() is None for name in RELAYS), "a relay exited"
