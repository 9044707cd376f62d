"""The recovery drill (doc/operations.md): backups, point-in-time restores and reconciliation, run
as an on-call engineer would, with `make`, against a stack on a PostgreSQL cluster of its own.

Readings are written under load through NGINX; a base backup; more writes; a time T; more writes;
then an operator truncates the readings, and the cluster is restored to T. Later its data directory
is destroyed, and the cluster restored to the latest archived WAL. Last, the measurement database
alone goes back in time, behind the patient service's copy of its readings, and `make reconcile`
brings the two into agreement. After each: every reading acknowledged before the target is there,
none after T, the services agree, and the API answers normally. And events a broker lost are
sent again from the outbox, by time range, and applied once."""

import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import psycopg
import pytest
from harness import ROOT, bearer, broker, eventually, rabbitmqctl, running_stack, stack_module, vhost_of
from own_postgres import OwnPostgres, own_postgres
from provisioning import database_env

from painkiller_common.events.topology import MEASUREMENT_EVENTS_FOR_PATIENTS

PATIENTS = 8


@dataclass
class Drill:
    postgres: OwnPostgres
    stack: stack_module.Stack
    client: httpx.Client
    patients: list[str]

    @property
    def env(self) -> dict[str, str]:
        own = {"POSTGRES_ADMIN_URL": self.postgres.admin_url, "BACKUP_DIR": str(self.backups)}
        # `make reconcile` reads both services' databases, as the stack's processes reach them.
        urls = {var: self.stack.env[var] for var in ("PATIENT_DATABASE_URL", "MEASUREMENT_DATABASE_URL")}
        return {**os.environ, **own, **urls}

    @property
    def backups(self) -> Path:
        return self.postgres.home / "backups"

    def make(self, *args: str) -> str:
        done = subprocess.run(["make", "-s", *args, f"RUN_DIR={self.stack.run_dir}"], cwd=ROOT, env=self.env,
                              capture_output=True, text=True, timeout=600)  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    def restore(self, *args: str) -> None:
        """`make restore`, then until both APIs answer ready through NGINX again."""
        self.make("restore", *args)
        for path in ("/api/v1/patient/health/ready", "/api/v1/measures/health/ready"):
            eventually(lambda path=path: self.client.get(path).status_code == 200, timeout_s=60)

    def reconcile(self) -> dict[str, object]:
        report: dict[str, object] = json.loads(self.make("reconcile"))
        print(f"make reconcile: {report}")  # the figures of doc/operations.md's drill
        return report

    def sql(self, service: str, statement: str) -> list[tuple[object, ...]]:
        database = {"patient": "patients", "measurement": "measurements"}[service]
        url = f"postgresql://postgres@127.0.0.1:{self.postgres.port}/{database}"
        with psycopg.connect(url, autocommit=True) as conn:
            cursor = conn.execute(statement)
            return cursor.fetchall() if cursor.description else []


@pytest.fixture(scope="module")
def drill() -> Iterator[Drill]:
    with own_postgres() as postgres:
        databases = {**database_env("patient", postgres.admin_url, "patients"),
                     **database_env("measurement", postgres.admin_url, "measurements")}  # fmt: skip
        with (
            broker() as users,
            running_stack(databases, users) as stack,
            httpx.Client(base_url=stack.url, timeout=10, headers=bearer(stack)) as client,
        ):
            patients = []
            for n in range(PATIENTS):
                created = client.post("/api/v1/patient", json={"first_name": f"D{n}", "last_name": "Drill", "age": 60})
                assert created.status_code == 201, created.text
                patients.append(created.json()["id"])
            drill = Drill(postgres, stack, client, patients)
            # What `make up` does first on a machine of its own.
            configure = [str(ROOT / ".venv/bin/python"), str(ROOT / "scripts/backups.py"), "configure"]
            subprocess.run(configure, env=drill.env, check=True, capture_output=True, timeout=300)
            yield drill


def write(drill: Drill, per_patient: int, heart_rate: int) -> set[str]:
    """Readings for every patient from 8 clients at once; the ids of those acknowledged (201)."""

    def post(patient: str) -> str | None:
        response = drill.client.post(f"/api/v1/patient/{patient}/measurements", json={"heart_rate_bpm": heart_rate})
        return response.json()["id"] if response.status_code == 201 else None

    with ThreadPoolExecutor(8) as pool:
        acknowledged = set(pool.map(post, drill.patients * per_patient)) - {None}
    assert len(acknowledged) == per_patient * len(drill.patients)
    return {str(i) for i in acknowledged}


def stored(drill: Drill) -> set[str]:
    """Every reading the API lists, over all the drill's patients."""
    ids = set()
    for patient in drill.patients:
        response = drill.client.get(f"/api/v1/patient/{patient}/measurements", params={"limit": 100})
        assert response.status_code == 200, response.text
        ids |= {item["id"] for item in response.json()["items"]}
    return ids


def now_between_writes() -> str:
    time.sleep(1)  # commits on either side are a second away from T
    moment = datetime.now(UTC).isoformat()
    time.sleep(1)
    return moment


def agree(drill: Drill) -> None:
    """Both services agree: every reading's patient exists in the patient service, and each
    patient's latest heart rate (API) is their newest stored reading's (measurement service)."""
    patients = {str(row[0]) for row in drill.sql("patient", "SELECT id FROM patients")}
    orphans = drill.sql("measurement", "SELECT DISTINCT patient_id FROM measurements")
    assert {str(row[0]) for row in orphans} <= patients
    for patient in drill.patients:
        readings = drill.client.get(f"/api/v1/patient/{patient}/measurements", params={"limit": 1}).json()["items"]
        shown = drill.client.get(f"/api/v1/patient/{patient}").json()
        latest = (shown["latest_vitals"] or {}).get("heart_rate_bpm")
        assert (latest or {}).get("measurement_id") == (readings[0]["id"] if readings else None), patient
        assert readings == [] or shown["risk"] is not None


def answers_normally(drill: Drill) -> None:
    reading = write(drill, 1, 77)
    assert reading <= stored(drill)
    eventually(lambda: all(
        drill.client.get(f"/api/v1/patient/{p}").json()["latest_vitals"]["heart_rate_bpm"]["value"] == 77
        for p in drill.patients
    ), timeout_s=30)  # fmt: skip


def test_a_truncate_is_undone_by_a_restore_to_the_moment_before(drill: Drill) -> None:
    before_backup = write(drill, 2, 60)
    drill.make("backup")
    before_t = write(drill, 2, 61)
    target = now_between_writes()
    after_t = write(drill, 2, 62)
    drill.sql("measurement", "TRUNCATE measurements CASCADE")  # the operator's mistake
    assert stored(drill) == set()

    drill.restore(f"TARGET={target}")

    now = stored(drill)
    assert before_backup | before_t <= now
    assert not now & after_t
    drill.reconcile()
    agree(drill)
    again = drill.reconcile()
    assert (again["readings_copied"], again["readings_tombstoned"], again["patients_reassessed"]) == (0, 0, 0)
    answers_normally(drill)


def test_a_lost_data_directory_is_restored_to_the_last_archived_wal(drill: Drill) -> None:
    archived = write(drill, 2, 63)
    segment = drill.sql("patient", "SELECT pg_walfile_name(pg_switch_wal())")[0][0]  # as archive_timeout does
    eventually(lambda: drill.sql("patient", "SELECT last_archived_wal FROM pg_stat_archiver")[0][0] == segment)
    archived_at = drill.sql("patient", "SELECT extract(epoch FROM last_archived_time) FROM pg_stat_archiver")[0][0]
    # What PainkillerBackupArchiveStale watches: the relay exports when a segment was last archived.
    eventually(lambda: last_archived(drill) >= float(archived_at) - 1, timeout_s=60)
    unarchived = write(drill, 1, 64)  # acknowledged, in WAL not yet archived: the recovery point's cost
    drill.postgres.crash()
    shutil.rmtree(drill.postgres.data_dir)  # the disk is gone

    drill.restore("TARGET=latest")

    now = stored(drill)
    assert archived <= now
    lost = len(unarchived - now)
    print(f"recovery point: {lost} of {len(unarchived)} readings written after the last archived segment were lost")
    drill.reconcile()
    agree(drill)
    answers_normally(drill)


def test_one_database_restored_alone_is_reconciled_with_the_other(drill: Drill) -> None:
    kept = write(drill, 1, 65)
    target = now_between_writes()
    undone = write(drill, 1, 66)
    eventually(lambda: all(  # the patient service has applied them: its copy runs ahead after the restore
        drill.client.get(f"/api/v1/patient/{p}").json()["latest_vitals"]["heart_rate_bpm"]["value"] == 66
        for p in drill.patients
    ), timeout_s=30)  # fmt: skip
    patients_before = drill.sql("patient", "SELECT count(*) FROM patients")

    drill.restore(f"TARGET={target}", "SERVICE=measurement")

    now = stored(drill)
    assert kept <= now and not now & undone
    assert drill.sql("patient", "SELECT count(*) FROM patients") == patients_before  # the other one untouched
    report = drill.reconcile()
    assert report["readings_tombstoned"] == len(undone)
    assert report["patients_reassessed"] == len(drill.patients)
    agree(drill)
    assert drill.reconcile()["readings_tombstoned"] == 0  # run again, nothing more to do
    answers_normally(drill)


def test_events_a_broker_lost_are_replayed_from_the_outbox_by_time_range(drill: Drill) -> None:
    since = datetime.now(UTC).isoformat()
    drill.stack.supervisor.stop_program("patient-consumer")
    try:
        write(drill, 1, 67)  # published, and marked so, while nobody consumes
        eventually(
            lambda: drill.sql("measurement", "SELECT count(*) FROM outbox WHERE published_at IS NULL")[0][0] == 0
        )
        rabbitmqctl("purge_queue", "-p", vhost_of(drill.stack), MEASUREMENT_EVENTS_FOR_PATIENTS.name)  # lost
    finally:
        drill.stack.supervisor.start_program("patient-consumer")
    time.sleep(3)
    assert all(heart_rate(drill, p) != 67 for p in drill.patients)  # the patient service never heard

    # Replayed from an hour back: the events it had applied come again too, and are ignored.
    earlier = (datetime.fromisoformat(since) - timedelta(hours=1)).isoformat()
    replayed = json.loads(drill.make("replay", "SERVICE=measurement", f"SINCE={earlier}"))["replayed"]
    assert replayed > len(drill.patients)
    eventually(lambda: all(heart_rate(drill, p) == 67 for p in drill.patients), timeout_s=30)
    agree(drill)
    assert drill.reconcile()["patients_reassessed"] == 0  # the replay left nothing to repair


def heart_rate(drill: Drill, patient: str) -> object:
    return drill.client.get(f"/api/v1/patient/{patient}").json()["latest_vitals"]["heart_rate_bpm"]["value"]


def last_archived(drill: Drill) -> float:
    port = drill.stack.metrics_ports["measurement-relay"]
    text = httpx.get(f"http://127.0.0.1:{port}/metrics").text
    line = next(line for line in text.splitlines() if line.startswith("painkiller_wal_last_archived_timestamp_seconds"))
    return float(line.split()[-1])
