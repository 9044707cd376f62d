"""Faults of the servers the stack stands on, and the end state every fault test must reach.

PostgreSQL is the machine's own (Debian's cluster, driven with `pg_ctlcluster` as root): a crash
is `stop -m immediate`, which kills every backend without a checkpoint, as a power cut or an OOM
kill of the postmaster would, and the restart replays the WAL.
"""

import contextlib
import subprocess
from collections.abc import Iterator

import httpx
from faulty import CONVERGE_S, Faulty, pending
from harness import POSTGRES_ADMIN, eventually
from load import BAND_OF_HEART_RATE, RETRIED, Writes
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from tally import FAULT_DATABASES, Tally, tally

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
    patient_events = tally(f.stack.run_dir, "patient_service", attempted=0, committed=0)
    assert (patient_events.lost, patient_events.applied_twice) == (0, 0), patient_events
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
