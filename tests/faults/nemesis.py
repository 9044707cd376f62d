"""The nemesis: faults injected at random while readings pour in, and the end state they must leave.

In the spirit of Jepsen's queue tests: a seeded schedule injects, in a random order and at random
times, each fault once: PostgreSQL crashed, the broker's application stopped, every connection
terminated, the patient consumer cut from its database, and a SIGKILL of every kind of process;
then everything is healed and the end state checked (`assert_end_state`).

PostgreSQL is the machine's own (Debian's cluster, driven with `pg_ctlcluster` as root): a crash
is `stop -m immediate`, which kills every backend without a checkpoint, as a power cut or an OOM
kill of the postmaster would, and the restart replays the WAL.
"""

import contextlib
import random
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import httpx
import pika
from faulty import CONVERGE_S, Faulty, kill9, pending
from harness import POSTGRES_ADMIN, eventually, rabbitmqctl, stack_module
from load import BAND_OF_HEART_RATE, RETRIED, Writes
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from tally import FAULT_DATABASES, Tally, tally

from painkiller_common.events.topology import (
    MEASUREMENT_EVENTS_FOR_PATIENTS,
    PATIENT_EVENTS_FOR_MEASUREMENTS,
    PATIENT_EVENTS_FOR_WEBHOOKS,
)

PAINKILLER_DATABASES = [make_url(url).database for var, url in FAULT_DATABASES.items() if var.endswith("_DATABASE_URL")]


def _cluster() -> tuple[str, str]:
    """The Debian cluster (version, name) listening on the tests' PostgreSQL port."""
    port = make_url(POSTGRES_ADMIN).port or 5432
    listing = subprocess.run(["pg_lsclusters", "--no-header"], capture_output=True, text=True, check=True).stdout
    for line in listing.splitlines():
        version, name, cluster_port, *_ = line.split()
        if int(cluster_port) == port:
            return version, name
    raise RuntimeError(f"no PostgreSQL cluster of this machine listens on port {port}")


def _pg_ctlcluster(*args: str) -> None:
    version, name = _cluster()
    subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", version, name, *args], check=True)


def postgres_ready() -> bool:
    url = make_url(POSTGRES_ADMIN)
    check = ["pg_isready", "-q", "-h", url.host or "127.0.0.1", "-p", str(url.port or 5432)]
    return subprocess.run(check).returncode == 0


def crash_postgres() -> None:
    _pg_ctlcluster("stop", "-m", "immediate")


def start_postgres() -> None:
    if not postgres_ready():
        _pg_ctlcluster("start")
    eventually(postgres_ready, timeout_s=60, interval_s=0.2)


@contextlib.contextmanager
def postgres_crashed() -> Iterator[None]:
    """PostgreSQL crashed for the body's duration, started again after it whatever happens."""
    crash_postgres()
    try:
        yield
    finally:
        start_postgres()


def _admin_scalar(sql: str) -> int:
    engine = create_engine(POSTGRES_ADMIN)
    try:
        with engine.connect() as conn:
            return int(conn.execute(text(sql), {"databases": PAINKILLER_DATABASES}).scalar_one())
    finally:
        engine.dispose()


def terminate_painkiller_backends() -> int:
    """`pg_terminate_backend` of every connection to the stack's databases; how many there were."""
    return _admin_scalar(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
        " WHERE datname = ANY(:databases) AND pid <> pg_backend_pid()"
    )


def relays_listening() -> int:
    """How many relays hold a LISTEN connection to the stack's databases."""
    return _admin_scalar(
        "SELECT count(*) FROM pg_stat_activity"
        " WHERE datname = ANY(:databases) AND application_name = 'painkiller-relay-listen'"
    )


def _query(var: str, sql: str, **params: object) -> list[tuple]:
    engine = create_engine(FAULT_DATABASES[var])
    try:
        with engine.connect() as conn:
            return [tuple(row) for row in conn.execute(text(sql), params).all()]
    finally:
        engine.dispose()


def expected_state(patient_ids: list[str]) -> dict[str, tuple[str, str]]:
    """patient id -> (id of its newest stored reading, the band that reading gives), from the
    measurement service's own rows: a reading committed whose answer was lost counts too."""
    newest = _query(
        "MEASUREMENT_DATABASE_URL",
        "SELECT DISTINCT ON (patient_id) patient_id::text, id::text, heart_rate_bpm FROM measurements"
        " WHERE patient_id = ANY(CAST(:ids AS uuid[])) ORDER BY patient_id, measured_at DESC",
        ids=patient_ids,
    )
    return {pid: (rid, BAND_OF_HEART_RATE[rate]) for pid, rid, rate in newest}


def shown_state(client: httpx.Client, patient_ids: list[str]) -> dict[str, tuple[str, str]]:
    """patient id -> (the reading its latest heart rate comes from, its risk band), as the API shows it."""
    shown = {}
    for pid in patient_ids:
        patient = client.get(f"/api/v1/patient/{pid}").json()
        latest = patient["latest_vitals"].get("heart_rate_bpm", {}).get("measurement_id")
        shown[pid] = (latest, (patient["risk"] or {}).get("band"))
    return shown


def assert_end_state(f: Faulty, writes: Writes, patient_ids: list[str], since_ids: set[str]) -> Tally:
    """Every acknowledged reading stored once and replicated; every event published and applied
    exactly once; every patient shows what its stored readings say; no 500; the tally."""
    # 201, or "partly down, send it again" (a 502, 503 or 504, a connection refused or cut): never a
    # 500, never a 4xx for a valid reading.
    assert all(s == 201 or s in RETRIED or isinstance(s, str) for s in writes.statuses), writes.statuses
    eventually(lambda: pending("measurement_service") == 0 and pending("patient_service") == 0, timeout_s=CONVERGE_S)
    acknowledged = list(writes.acknowledged)
    stored = _query("MEASUREMENT_DATABASE_URL", "SELECT id::text FROM measurements")
    assert set(acknowledged) <= {row[0] for row in stored}, "an acknowledged reading is not stored"
    counts = {"attempted": len(acknowledged) + writes.given_up, "committed": len(acknowledged)}
    figures = eventually(
        lambda: (t := tally(f.stack.run_dir, "measurement_service", **counts, since_ids=since_ids)).lost == 0 and t,
        timeout_s=CONVERGE_S,
    )
    assert figures.applied_twice == 0, figures
    # The patient events the last readings caused (risk changes) are committed after the outboxes
    # were seen empty above: they too must all arrive, once.
    patient_events = eventually(
        lambda: (t := tally(f.stack.run_dir, "patient_service", attempted=0, committed=0)).lost == 0 and t,
        timeout_s=CONVERGE_S,
    )
    assert patient_events.applied_twice == 0, patient_events
    replicated = _query(
        "PATIENT_DATABASE_URL",
        "SELECT count(*) FROM vital_readings WHERE measurement_id = ANY(CAST(:ids AS uuid[]))",
        ids=acknowledged,
    )
    assert replicated == [(len(acknowledged),)]
    expected = expected_state(patient_ids)
    assert len(expected) == len(patient_ids)
    eventually(lambda: shown_state(f.client, patient_ids) == expected, timeout_s=CONVERGE_S)
    return figures


@dataclass(frozen=True)
class Fault:
    """One thing the nemesis does to the stack, and how it heals: `inject` returns once healed."""

    name: str
    inject: Callable[[Faulty, float], None]  # (the faulty stack, how long the fault lasts in s)


def _postgres_crash(_f: Faulty, seconds: float) -> None:
    with postgres_crashed():
        time.sleep(seconds)


def _broker_stop(_f: Faulty, seconds: float) -> None:
    rabbitmqctl("stop_app")
    try:
        time.sleep(seconds)
    finally:
        rabbitmqctl("start_app")


def _terminate_backends(_f: Faulty, _seconds: float) -> None:
    terminate_painkiller_backends()


def _cut_consumer_from_postgres(f: Faulty, seconds: float) -> None:
    f.consumer_db_proxy.down()
    try:
        time.sleep(seconds)
    finally:
        f.consumer_db_proxy.up()


def _sigkill(kind: str) -> Callable[[Faulty, float], None]:
    def inject(f: Faulty, _seconds: float) -> None:
        f.killed.update(kill9(f.stack, kind).keys())

    return inject


FAULTS = [
    Fault("PostgreSQL crash (stop -m immediate)", _postgres_crash),
    Fault("broker application stopped", _broker_stop),
    Fault("pg_terminate_backend of every connection", _terminate_backends),
    Fault("network cut: patient consumer to PostgreSQL", _cut_consumer_from_postgres),
    *(Fault(f"SIGKILL {kind}", _sigkill(kind)) for kind in stack_module.PROCESSES),
]


@dataclass(frozen=True)
class Injection:
    at_s: float  # after the load began
    fault: Fault
    lasts_s: float


def schedule(rng: random.Random, window_s: float) -> list[Injection]:
    """Every fault once, in a random order, at a random time within a slot of its own."""
    faults = rng.sample(FAULTS, len(FAULTS))
    slot = window_s / len(faults)
    plan = []
    for n, fault in enumerate(faults):
        lasts = rng.uniform(1.0, 5.0)
        plan.append(Injection(n * slot + rng.uniform(0, max(slot - lasts - 1, 0)), fault, lasts))
    return plan


def run(f: Faulty, plan: list[Injection], *, started: float) -> None:
    """Inject each fault at its time; heal everything whatever happens."""
    try:
        for injection in plan:
            time.sleep(max(0.0, started + injection.at_s - time.monotonic()))
            print(f"{time.monotonic() - started:6.1f} s  {injection.fault.name} ({injection.lasts_s:.1f} s)")
            injection.fault.inject(f, injection.lasts_s)
    finally:
        heal(f)


def heal(f: Faulty) -> None:
    start_postgres()
    rabbitmqctl("start_app")
    f.consumer_db_proxy.up()


def dead_letters(f: Faulty) -> int:
    """Messages in the dead-letter queues of every consumer: a good event there is one lost."""
    queues = [MEASUREMENT_EVENTS_FOR_PATIENTS, PATIENT_EVENTS_FOR_MEASUREMENTS, PATIENT_EVENTS_FOR_WEBHOOKS]
    connection = pika.BlockingConnection(pika.URLParameters(f.amqp_url))
    try:
        channel = connection.channel()
        return sum(
            channel.queue_declare(queue.dead_letter_queue, passive=True).method.message_count for queue in queues
        )
    finally:
        connection.close()
