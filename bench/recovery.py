"""Recovery figures for doc/operations.md: how long a backup, a restore and a reconcile take at
1 M and 5 M readings, on a PostgreSQL cluster of the run's own (initdb'd on a free port).

    .venv/bin/python bench/recovery.py [--readings 1000000 5000000]

For each size: the readings (three vitals each, 1,000 per patient) and the patient service's copy
of them are written server-side; a full backup; 20,000 readings more, in WAL only; then the
cluster's data directory is destroyed and restored to the latest archived WAL (`backups.py
restore --target latest`, what `make restore` runs), the measurement database alone is restored
through the scratch instance (`--service measurement`), and `reconcile.py` checks every patient.
Each time is wall clock, from the command's start to its end, on this machine.
"""

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "tests" / "recovery")]

from harness import broker  # noqa: E402
from own_postgres import OwnPostgres, own_postgres  # noqa: E402
from provisioning import database_env  # noqa: E402
from sqlalchemy import create_engine, text  # noqa: E402

PYTHON = str(ROOT / ".venv" / "bin" / "python")
PER_PATIENT = 1000
SEED = "SELECT md5('r' || i)::uuid AS id, md5('p' || (i / {per}))::uuid AS patient_id, timestamptz '2024-01-01' + i * interval '1 second' AS measured_at FROM generate_series(CAST(:a AS int), CAST(:b AS int)) i"  # noqa: E501


def timed(args: list[str], env: dict[str, str]) -> float:
    started = time.monotonic()
    done = subprocess.run(args, env=env, capture_output=True, text=True, cwd=ROOT)
    if done.returncode:
        raise SystemExit(f"{' '.join(args)} failed:\n{done.stdout}{done.stderr}")
    return time.monotonic() - started


def writable_after(args: list[str], url: str, env: dict[str, str]) -> tuple[float, float]:
    """Run a cluster restore; seconds until the cluster accepted writes again, and until the
    command ended (it takes a full backup after: the next restore starts there)."""
    started = time.monotonic()
    command = subprocess.Popen(args, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    writable = None
    while command.poll() is None or writable is None:
        try:
            with psycopg.connect(url, connect_timeout=1) as conn:
                if not conn.execute("SELECT pg_is_in_recovery()").fetchone()[0]:  # type: ignore[index]
                    writable = writable or time.monotonic() - started
        except psycopg.OperationalError:
            pass
        if command.poll() is not None and command.returncode:
            raise SystemExit(f"{' '.join(args)} failed:\n{command.stdout.read() if command.stdout else ''}")
        time.sleep(0.2)
    return writable, time.monotonic() - started


def grow(databases: dict[str, str], first: int, last: int) -> None:
    """Readings first..last (and patients for them), in both services' tables as events leave them."""
    seed = SEED.format(per=PER_PATIENT)
    measurement = create_engine(databases["MEASUREMENT_MIGRATION_DATABASE_URL"])
    patient = create_engine(databases["PATIENT_MIGRATION_DATABASE_URL"])
    with measurement.begin() as conn:
        conn.execute(text(
            "INSERT INTO known_patients (patient_id, version) SELECT DISTINCT patient_id, 1 FROM (" + seed + ") s "
            "ON CONFLICT DO NOTHING"), {"a": first, "b": last})  # fmt: skip
        conn.execute(text(
            "INSERT INTO measurements (id, patient_id, measured_at, recorded_at, heart_rate_bpm, spo2_percent, "
            "temperature_c) SELECT id, patient_id, measured_at, now(), 70, 97, 36.8 FROM (" + seed + ") s"),
            {"a": first, "b": last})  # fmt: skip
    with patient.begin() as conn:
        conn.execute(text(
                "INSERT INTO patients (id, first_name, last_name, age, sex, conditions, created_at, updated_at) "
                "SELECT DISTINCT patient_id, 'Seeded', 'Patient', 50, 'unknown', CAST('{}' AS varchar[]), now(), now() "
                "FROM (" + seed + ") s ON CONFLICT DO NOTHING"), {"a": first, "b": last})  # fmt: skip
        conn.execute(text(
                "INSERT INTO vital_readings (measurement_id, patient_id, measured_at, heart_rate_bpm, spo2_percent, "
                "temperature_c) SELECT id, patient_id, measured_at, 70, 97, 36.8 FROM (" + seed + ") s"),
                {"a": first, "b": last})  # fmt: skip
    for engine in (measurement, patient):
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE"))
        engine.dispose()


def size_mb(postgres: OwnPostgres) -> float:
    engine = create_engine(postgres.admin_url)
    with engine.connect() as conn:
        total = conn.execute(text("SELECT sum(pg_database_size(datname)) FROM pg_database")).scalar_one()
    engine.dispose()
    return float(total) / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readings", type=int, nargs="+", default=[1_000_000, 5_000_000])
    args = parser.parse_args()
    rows = ["| readings | cluster | full backup | directory lost: writable (command) | one database | reconcile |",
            "|---:|---:|---:|---:|---:|---:|"]  # fmt: skip
    with own_postgres() as postgres, broker() as users:
        databases = {**database_env("patient", postgres.admin_url, "patients"),
                     **database_env("measurement", postgres.admin_url, "measurements")}  # fmt: skip
        env = {**os.environ, **databases, **users.env(), "POSTGRES_ADMIN_URL": postgres.admin_url,
               "BACKUP_DIR": str(postgres.home / "backups")}  # fmt: skip
        for module in ("patient_service", "measurement_service"):
            timed([PYTHON, "-m", module, "migrate"], env)
        timed([PYTHON, "scripts/backups.py", "configure"], env)
        have = 0
        for readings in sorted(args.readings):
            grow(databases, have + 1, readings)
            have = readings
            backup_s = timed([PYTHON, "scripts/backups.py", "backup", "--type", "full"], env)
            grow(databases, have + 1, have + 20_000)  # in WAL since the backup: replayed by the restore
            have += 20_000
            postgres.crash()
            shutil.rmtree(postgres.data_dir)
            restore = [PYTHON, "scripts/backups.py", "restore", "--target", "latest", "--run-dir", str(postgres.home)]
            lost_s, lost_total_s = writable_after(restore, postgres.admin_url.replace("+psycopg", ""), env)
            one_s = timed([*restore, "--service", "measurement"], env)
            reconcile_s = timed([PYTHON, "scripts/reconcile.py"], env)
            figures = [f"{readings:,}", f"{size_mb(postgres):,.0f} MB", f"{backup_s:.0f} s",
                       f"{lost_s:.0f} s ({lost_total_s:.0f} s)", f"{one_s:.0f} s", f"{reconcile_s:.0f} s"]  # fmt: skip
            rows.append(f"| {' | '.join(figures)} |")
            print(rows[-1], flush=True)
    print("\n".join(rows))


if __name__ == "__main__":
    main()
