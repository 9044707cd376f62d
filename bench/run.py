"""Painkiller benchmark: `make bench`. Prints a table and saves it under bench/results/.

It starts a stack of its own (scripts/stack.py: APIs, relays, consumers, NGINX) on fresh bench
databases, plus the baseline app (bench/baseline_app.py) behind the same NGINX, and drives both
with wrk. Every Painkiller figure is shown as a ratio to its baseline from the same run, so the
results survive a noisy machine. It also counts what a reading costs the whole machine, every
process's CPU from the load's start until it is back at rest (bench/machine.py), and what the
stack burns at rest. Then it grows the tables from 10 thousand to millions of rows
(server-side INSERT ... SELECT) and measures the same reads again.
"""

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from sqlalchemy import create_engine, text

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(ROOT))  # bench.machine, when run as a script

import bootstrap  # noqa: E402
import stack as stack_module  # noqa: E402
from provisioning import SERVICES, BrokerUsers, database_env  # noqa: E402
from stack import free_port  # noqa: E402

from bench import mllp  # noqa: E402
from bench.machine import Cost, Machine, Usage  # noqa: E402
from painkiller_common.db import ensure_database  # noqa: E402
from painkiller_common.http.pagination import encode_cursor  # noqa: E402
from painkiller_testing.devauth import mint  # noqa: E402

ADMIN = bootstrap.admin_url()
# The stack connects as its least-privilege roles; the benchmark's own seeding, as the owners.
STACK_DATABASES = {
    **database_env("patient", ADMIN, "patients_bench"),
    **database_env("measurement", ADMIN, "measurements_bench"),
}
DATABASES = {
    "PATIENT_DATABASE_URL": STACK_DATABASES["PATIENT_MIGRATION_DATABASE_URL"],
    "MEASUREMENT_DATABASE_URL": STACK_DATABASES["MEASUREMENT_MIGRATION_DATABASE_URL"],
}
# The obvious app stays on psycopg2, as most apps of its kind are written (bench/baseline_app.py).
BASELINE_DB = ADMIN.replace("postgresql+psycopg://", "postgresql+psycopg2://", 1).rsplit("/", 1)[0] + "/bench_baseline"
VHOST = "painkiller-bench"
MEASURED_AT = "2026-11-20T08:00:00Z"
PATIENTS = 200
HL7_CONNECTIONS = 16  # bedside monitors, each waiting for its ACK before the next message
TARGET_READINGS = 5000  # the patient whose pages are read, at every table size


@dataclass
class Result:
    name: str
    rps: float
    p50_ms: float
    p99_ms: float
    non_2xx: int
    socket_errors: int
    unit_factor: int = 1  # readings per request, for the batch
    requests: int = 0
    cpu_ms: float = float("nan")  # CPU of the serving process (and its workers) per request
    commits: float = float("nan")  # transactions committed in its database per request (all clients)

    @property
    def per_s(self) -> float:
        return self.rps * self.unit_factor


def wrk_binary() -> str:
    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() != 0:
        sys.exit("wrk is not installed: apt-get install -y wrk")
    subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=True, capture_output=True)
    return "wrk"


def drop_database(url: str) -> None:
    name = url.rsplit("/", 1)[1]
    admin = create_engine(ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def fresh_database(url: str) -> None:
    drop_database(url)
    ensure_database(ADMIN.rsplit("/", 1)[0] + "/" + url.rsplit("/", 1)[1])


def rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", "-q", *args], check=False, capture_output=True)


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.wrk = wrk_binary()
        self.work = Path(tempfile.mkdtemp(prefix="painkiller-bench-"))
        self.work.chmod(0o755)
        self.broker = BrokerUsers(
            vhost=VHOST,
            names={service: f"{VHOST}-{service}" for service in SERVICES},
            passwords={service: f"bench-{service}" for service in SERVICES},
            admin=f"{VHOST}-admin",
            admin_password="bench-admin",
        )
        self.stack = stack_module.Stack(
            run_dir=self.work,
            nginx_port=free_port(),
            tls_port=free_port(),
            hl7_port=free_port(),
            hl7_tls_port=free_port(),
            hl7_listener_port=free_port(),
            patient_port=free_port(),
            measurement_port=free_port(),
            supervisor_metrics_port=free_port(),
            env={**STACK_DATABASES, **self.broker.env()},
            rate_limit_rps=0,  # the benchmark measures the services, not NGINX's limits
            replicas=getattr(args, "replicas", 1),  # bench/replicas.py: one against two of each
        )
        self.baseline_port = free_port()
        self.baseline: subprocess.Popen[bytes] | None = None
        self.client = httpx.Client(base_url=self.stack.url, timeout=30)
        self.token = ""
        self.patient_ids: list[str] = []
        self.machine = Machine(self.roles)
        self.rest: Usage = {}
        self.costs: dict[str, Cost] = {}

    # --- the stack ----------------------------------------------------------------------
    def start(self) -> None:
        rabbitmqctl("delete_vhost", VHOST)
        rabbitmqctl("add_vhost", VHOST)
        self.broker.create()
        for url in [*DATABASES.values(), BASELINE_DB]:
            fresh_database(url)
        stack_module.up(self.stack)
        # Every request carries a token, as in production: checking it is part of the cost.
        self.token = mint(self.stack.auth_dir, subject="bench")
        self.client.headers["Authorization"] = f"Bearer {self.token}"
        self.start_baseline()

    def start_baseline(self) -> None:
        workers = os.environ.get("MEASUREMENT_WORKERS", "1")
        self.baseline = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "bench.baseline_app:app", "--port", str(self.baseline_port),
             "--workers", workers, "--log-level", "warning", "--no-access-log"],
            cwd=ROOT,
            env={**os.environ, "BASELINE_DATABASE_URL": BASELINE_DB},
            stdout=(self.work / "baseline.log").open("ab"),
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        # The baseline goes through the same NGINX server and proxy settings as Painkiller.
        conf = f"upstream baseline {{ server 127.0.0.1:{self.baseline_port}; keepalive 32; }}\n"
        (self.work / "nginx" / "conf.d" / "baseline.conf").write_text(conf)
        template = (self.work / "nginx" / "conf.d" / "painkiller.conf").read_text()
        location = "    location /baseline/ { proxy_pass http://baseline; }\n\n    location / {"
        (self.work / "nginx" / "conf.d" / "painkiller.conf").write_text(
            template.replace("    location / {", location, 1)
        )
        subprocess.run(stack_module.nginx_command(self.stack, "-s", "reload"), check=True)
        stack_module.wait_ready(f"http://127.0.0.1:{self.baseline_port}/docs", process=self.baseline)
        time.sleep(1)  # NGINX workers pick up the reload

    def stop(self) -> None:
        self.client.close()
        if self.baseline:
            stack_module.stop([self.baseline])
        self.stack.supervisor.shutdown()
        rabbitmqctl("delete_vhost", VHOST)
        self.broker.delete()
        shutil.rmtree(self.work, ignore_errors=True)

    # --- data ---------------------------------------------------------------------------
    def seed_patients(self) -> None:
        for i in range(PATIENTS):
            body = {"mrn": f"BENCH-{i}", "first_name": "Bench", "last_name": f"Patient {i}", "age": 40 + i % 50}
            self.patient_ids.append(self.client.post("/api/v1/patient", json=body).json()["id"])
        for pid in self.patient_ids[:20]:
            self.client.post(f"/api/v1/patient/{pid}/measurements", json={"heart_rate_bpm": 80, "spo2_percent": 96})
        base = self.baseline_post_body().replace("{n}", "0")
        self.baseline_id = self.client.post("/baseline/readings", content=base,
                                            headers={"content-type": "application/json"}).json()["id"]  # fmt: skip

    def baseline_post_body(self) -> str:
        body = {"patient_id": self.patient_ids[0], "heart_rate_bpm": 72, "spo2_percent": 97,
                "temperature_c": 36.8, "measured_at": MEASURED_AT, "source": "bench-{n}"}  # fmt: skip
        return json.dumps(body)

    # --- wrk --------------------------------------------------------------------------------
    def wrk_run(self, name: str, script: str, paths: list[str], *, body: str = "", connections: int | None = None,
                seconds: float | None = None, unit_factor: int = 1, server: str | None = None,
                database: str | None = None, key_prefix: str = "bench-") -> Result:  # fmt: skip
        """One wrk run; `server` (a stack process name, or "baseline") is the process whose CPU is
        counted, `database` the one whose commits are."""
        paths_file = self.work / "paths.txt"
        paths_file.write_text("\n".join(paths) + "\n")
        body_file = self.work / "body.json"
        body_file.write_text(body)
        combined = self.work / "script.lua"
        combined.write_text((BENCH / "lua" / script).read_text() + "\n" + (BENCH / "lua" / "report.lua").read_text())
        conns = connections or self.args.connections
        cmd = [self.wrk, "-t", "2", "-c", str(conns), "-d", f"{round(seconds or self.args.seconds)}s", "--latency",
               "-s", str(combined), self.stack.url]  # fmt: skip
        env = {**os.environ, "BENCH_PATHS": str(paths_file), "BENCH_BODY": str(body_file), "BENCH_TOKEN": self.token,
               "BENCH_KEY_PREFIX": key_prefix}  # fmt: skip
        access_log = self.work / "nginx" / "access.log"
        log_offset = access_log.stat().st_size
        pids = self.server_pids(server)
        cpu_before, commits_before = cpu_seconds(pids), commits(database)
        out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout
        cpu_used, committed = cpu_seconds(pids) - cpu_before, commits(database) - commits_before
        line = next(line for line in out.splitlines() if line.startswith("BENCH "))
        figures = json.loads(line[len("BENCH ") :])
        result = Result(
            name=name,
            rps=figures["requests"] / figures["seconds"],
            p50_ms=figures["p50_ms"],
            p99_ms=figures["p99_ms"],
            non_2xx=figures["non_2xx"],
            socket_errors=figures["socket_errors"],
            unit_factor=unit_factor,
            requests=figures["requests"],
        )
        if result.requests:
            result.cpu_ms = cpu_used * 1000 / result.requests if pids else float("nan")
            result.commits = committed / result.requests if database else float("nan")
        if result.non_2xx:  # say which: the table only counts them
            with access_log.open() as log:
                log.seek(log_offset)
                statuses = Counter(line.split('" ')[1].split()[0] for line in log if '" ' in line)
            print(f"  statuses: {dict(statuses)}", flush=True)
        print(f"  {name:<48} {result.per_s:>10.0f}/s  p50 {result.p50_ms:6.1f} ms  p99 {result.p99_ms:6.1f} ms  "
              f"non-2xx {result.non_2xx}  errors {result.socket_errors}  CPU {result.cpu_ms:.2f} ms/req  "
              f"commits {result.commits:.2f}/req", flush=True)  # fmt: skip
        return result

    def server_pids(self, server: str | None) -> list[int]:
        if server is None:
            return []
        if server == "baseline":
            assert self.baseline is not None
            return [self.baseline.pid, *children(self.baseline.pid)]
        # Every replica of that process (the stack may run several: bench/replicas.py).
        replicas = [pid for name, pid in self.stack.pids().items() if stack_module.kind_of(name)[0] == server]
        return [pid for replica in replicas for pid in (replica, *children(replica))]

    def roles(self) -> dict[int, str]:
        """The processes whose trees bench/machine.py counts by role: each stack process (replicas
        under one role) and the baseline."""
        roles = {pid: stack_module.kind_of(name)[0] for name, pid in self.stack.pids().items()}
        if self.baseline is not None:
            roles[self.baseline.pid] = "baseline"
        return roles

    def costed(self, name: str, run: Callable[[], Result]) -> Result:
        """`run`, with what each reading it stored cost the machine (self.costs[name])."""
        self.machine.settle(self.rest)  # nothing left over from the scenario before
        before, started = self.machine.usage(), time.monotonic()
        result = run()
        stored = (result.requests - result.non_2xx) * result.unit_factor
        self.costs[name] = cost = self.machine.cost(before, started, self.rest, stored)
        print(f"  machine CPU per reading {cost.total_ms:.2f} ms (back at rest {cost.settled_s:.0f} s after the load)",
              flush=True)  # fmt: skip
        return result

    def reading_paths(self) -> list[str]:
        return [f"/api/v1/patient/{pid}/measurements" for pid in self.patient_ids]

    # --- scenarios --------------------------------------------------------------------------
    def writes(self) -> dict[str, Result]:
        self.drain_events()
        print("  at rest for 10 s...", flush=True)
        self.rest = self.machine.rest_rate(10)
        results = {"baseline_post": self.costed("baseline_post", lambda: self.wrk_run(
            "baseline: POST insert", "post_json.lua", ["/baseline/readings"], body=self.baseline_post_body(),
            server="baseline", database=BASELINE_DB))}  # fmt: skip
        body = json.dumps({"heart_rate_bpm": 72, "spo2_percent": 97, "temperature_c": 36.8,
                           "measured_at": MEASURED_AT, "source": "bench-{n}"})  # fmt: skip
        # Its cost on a run of its own: the lag probe below polls the patient API while it waits.
        cost_body = body.replace("bench-", "cost-")
        self.costed("post", lambda: self.wrk_run("POST a reading (machine cost)", "post_json.lua",
                                                 self.reading_paths(), body=cost_body, server="measurement-api",
                                                 key_prefix="cost-"))  # fmt: skip
        self.machine.settle(self.rest)
        lag = LagProbe(self.stack.url, self.patient_ids[-1], self.token)
        lag.start()
        window = db_now()
        results["post"] = self.wrk_run("POST /api/v1/patient/{id}/measurements", "post_json.lua",
                                       self.reading_paths(), body=body, server="measurement-api",
                                       database=DATABASES["MEASUREMENT_DATABASE_URL"])  # fmt: skip
        self.lag = lag.stop()
        post_window = (window, db_now())
        readings = [{"heart_rate_bpm": 60 + k % 40, "measured_at": MEASURED_AT, "source": f"b{{n}}-{k}"}
                    for k in range(1000)]  # fmt: skip
        batch_paths = [f"{path}/batch" for path in self.reading_paths()]
        results["batch"] = self.costed("batch", lambda: self.wrk_run(
            "POST .../measurements/batch (1,000 readings)", "post_json.lua", batch_paths,
            body=json.dumps({"readings": readings}), connections=4, unit_factor=1000, server="measurement-api",
            database=DATABASES["MEASUREMENT_DATABASE_URL"]))  # fmt: skip
        results["hl7"] = self.costed("hl7", lambda: self.mllp_run(
            f"HL7 ORU^R01 over MLLP ({HL7_CONNECTIONS} connections, send and wait)", server="measurement-hl7",
            database=DATABASES["MEASUREMENT_DATABASE_URL"]))  # fmt: skip
        self.drain_events()
        self.hops = event_hops(*post_window)
        return results

    def mllp_run(self, name: str, *, server: str, database: str) -> Result:
        """Monitors sending PCD-01 ORU^R01 through NGINX's MLLP port, one message at a time per
        connection (bench/mllp.py); a non-AA ACK counts as non-2xx."""
        pids = self.server_pids(server)
        cpu_before, commits_before = cpu_seconds(pids), commits(database)
        mrns = [f"BENCH-{i}" for i in range(PATIENTS)]
        tally = mllp.run(self.stack.hl7_port, mrns, connections=HL7_CONNECTIONS, seconds=self.args.hl7_seconds)
        cpu_used, committed = cpu_seconds(pids) - cpu_before, commits(database) - commits_before
        result = Result(
            name=name,
            rps=tally.sent / self.args.hl7_seconds,
            p50_ms=percentile(tally.latencies, 0.5) * 1000,
            p99_ms=percentile(tally.latencies, 0.99) * 1000,
            non_2xx=tally.not_aa,
            socket_errors=tally.errors,
            requests=tally.sent,
        )
        if result.requests:
            result.cpu_ms, result.commits = cpu_used * 1000 / result.requests, committed / result.requests
        print(f"  {name:<48} {result.per_s:>10.0f}/s  p50 {result.p50_ms:6.1f} ms  p99 {result.p99_ms:6.1f} ms  "
              f"not AA {result.non_2xx}  errors {result.socket_errors}  CPU {result.cpu_ms:.2f} ms/msg  "
              f"commits {result.commits:.2f}/msg", flush=True)  # fmt: skip
        return result

    def drain_events(self) -> None:
        """Let the relays and consumers catch up before the reads (and say how long it took)."""
        started = time.monotonic()
        while time.monotonic() - started < 300:
            pending = [self.client.get(p).json()["checks"]["outbox"]["pending"]
                       for p in ("/api/v1/patient/health/ready", "/api/v1/measures/health/ready")]  # fmt: skip
            if not any(pending):
                break
            time.sleep(0.5)
        print(f"  (outboxes drained {time.monotonic() - started:.1f}s after the writes)", flush=True)

    def reads(self) -> dict[str, Result]:
        patient_paths = [f"/api/v1/patient/{pid}" for pid in self.patient_ids]
        return {
            "baseline_get": self.wrk_run(
                "baseline: GET by key",
                "get_paths.lua",
                [f"/baseline/readings/{self.baseline_id}"],
                server="baseline",
                database=BASELINE_DB,
            ),  # fmt: skip
            "get_patient": self.wrk_run(
                "GET /api/v1/patient/{id}",
                "get_paths.lua",
                patient_paths,
                server="patient-api",
                database=DATABASES["PATIENT_DATABASE_URL"],
            ),
            "first_page": self.wrk_run(
                "GET /api/v1/patient/{id}/measurements (first page)",
                "get_paths.lua",
                self.reading_paths(),
                server="measurement-api",
                database=DATABASES["MEASUREMENT_DATABASE_URL"],
            ),
        }

    # --- data size ------------------------------------------------------------------------
    def size_reads(self, label: str) -> dict[str, Result]:
        target = self.patient_ids[0]
        seconds = max(3.0, self.args.seconds / 2)
        deep_m = self.cursor("MEASUREMENT_DATABASE_URL",
                             "SELECT measured_at, id FROM measurements WHERE patient_id = :p "
                             "ORDER BY measured_at DESC, id DESC OFFSET :o LIMIT 1", p=target, o=4000)  # fmt: skip
        total_p = self.scalar("PATIENT_DATABASE_URL", "SELECT count(*) FROM patients")
        deep_p = self.cursor("PATIENT_DATABASE_URL", "SELECT created_at, id FROM patients "
                             "ORDER BY created_at, id OFFSET :o LIMIT 1", o=total_p // 2)  # fmt: skip
        scenarios = {
            "measurements_first": [f"/api/v1/patient/{target}/measurements"],
            "measurements_deep": [f"/api/v1/patient/{target}/measurements?cursor={deep_m}"],
            "patients_first": ["/api/v1/patient"],
            "patients_deep": [f"/api/v1/patient?cursor={deep_p}"],
        }
        return {
            key: self.wrk_run(f"[{label}] GET {key.replace('_', ' ')}", "get_paths.lua", paths, seconds=seconds)
            for key, paths in scenarios.items()
        }

    def scalar(self, db: str, sql: str, **params: object) -> int:
        engine = create_engine(DATABASES[db])
        with engine.connect() as conn:
            value = conn.execute(text(sql), params).scalar_one()
        engine.dispose()
        return value

    def cursor(self, db: str, sql: str, **params: object) -> str:
        engine = create_engine(DATABASES[db])
        with engine.connect() as conn:
            at, row_id = conn.execute(text(sql), params).one()
        engine.dispose()
        return encode_cursor(at, row_id)

    def clear_measurements(self) -> None:
        """Start the data-size runs from the readings they seed, not those the writes left."""
        engine = create_engine(DATABASES["MEASUREMENT_DATABASE_URL"])
        with engine.begin() as conn:
            conn.execute(text("TRUNCATE measurements, outbox"))
        engine.dispose()

    def grow(self, patients: int, measurements: int) -> float:
        """Add rows server-side until the tables hold the given counts; seconds it took."""
        started = time.monotonic()
        target = self.patient_ids[0]
        have_p = self.scalar("PATIENT_DATABASE_URL", "SELECT count(*) FROM patients")
        have_m = self.scalar("MEASUREMENT_DATABASE_URL", "SELECT count(*) FROM measurements")
        have_t = self.scalar("MEASUREMENT_DATABASE_URL", "SELECT count(*) FROM measurements WHERE patient_id = :p",
                             p=target)  # fmt: skip
        sql = [
            ("PATIENT_DATABASE_URL",
             "INSERT INTO patients (id, first_name, last_name, age, sex, conditions, created_at, updated_at) "
             "SELECT gen_random_uuid(), 'Seeded', 'Patient ' || i, 50, 'unknown', '{}', "
             "timestamptz '2020-01-01' + i * interval '1 second', now() "
             "FROM generate_series(CAST(:a AS int), CAST(:b AS int)) i",
             have_p + 1, patients),
            # The target patient always has the same readings; the rest belong to 1,000-reading patients.
            ("MEASUREMENT_DATABASE_URL",
             "INSERT INTO measurements (id, patient_id, measured_at, recorded_at, heart_rate_bpm) "
             "SELECT gen_random_uuid(), CAST(:p AS uuid), "
             "timestamptz '2025-01-01' + i * interval '1 minute', now(), 70 "
             "FROM generate_series(CAST(:a AS int), CAST(:b AS int)) i", have_t + 1, TARGET_READINGS),
            ("MEASUREMENT_DATABASE_URL",
             "INSERT INTO measurements (id, patient_id, measured_at, recorded_at, heart_rate_bpm) "
             "SELECT gen_random_uuid(), md5((i / 1000)::text)::uuid, "
             "timestamptz '2024-01-01' + i * interval '1 second', now(), 70 "
             "FROM generate_series(CAST(:a AS int), CAST(:b AS int)) i",
             have_m - have_t + 1, measurements - TARGET_READINGS),
        ]  # fmt: skip
        for db, statement, first, last in sql:
            if last >= first:
                engine = create_engine(DATABASES[db])
                with engine.begin() as conn:
                    conn.execute(text(statement), {"a": first, "b": last, "p": target})
                with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                    conn.execute(text("VACUUM ANALYZE"))
                engine.dispose()
        return time.monotonic() - started


class LagProbe(threading.Thread):
    """While the POST scenario runs: post a reading, time until it shows on the patient."""

    def __init__(self, url: str, patient_id: str, token: str) -> None:
        super().__init__(daemon=True)
        self.url, self.patient_id, self.token = url, patient_id, token
        self.samples: list[float] = []
        self.done = threading.Event()

    def run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=30, headers={"Authorization": f"Bearer {self.token}"}) as client:
            n = 0
            while not self.done.is_set():
                n += 1
                at = (datetime.now(UTC) - timedelta(seconds=1)).isoformat()
                posted = client.post(f"/api/v1/patient/{self.patient_id}/measurements",
                                     json={"heart_rate_bpm": 50 + n % 100, "measured_at": at})  # fmt: skip
                if posted.status_code != 201:
                    continue
                committed, wanted = time.monotonic(), posted.json()["id"]
                while time.monotonic() - committed < 30:
                    vitals = client.get(f"/api/v1/patient/{self.patient_id}").json()["latest_vitals"]
                    if vitals.get("heart_rate_bpm", {}).get("measurement_id") == wanted:
                        self.samples.append(time.monotonic() - committed)
                        break
                    time.sleep(0.005)
                time.sleep(0.1)

    def stop(self) -> list[float]:
        self.done.set()
        self.join()
        return self.samples


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pids: list[int]) -> float:
    """User and system CPU the processes have used so far (/proc/PID/stat, fields 14 and 15)."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / CLOCK_TICKS


def commits(database: str | None) -> int:
    """Transactions committed in `database` so far (pg_stat_database, read as the superuser)."""
    if database is None:
        return 0
    name = database.rsplit("/", 1)[1]
    engine = create_engine(ADMIN)
    with engine.connect() as conn:
        conn.execute(text("SELECT pg_stat_clear_snapshot()"))
        value = conn.execute(text("SELECT xact_commit FROM pg_stat_database WHERE datname = :n"), {"n": name}).scalar()
    engine.dispose()
    return int(value or 0)


def db_now() -> datetime:
    engine = create_engine(ADMIN)
    with engine.connect() as conn:
        value = conn.execute(text("SELECT now()")).scalar_one()
    engine.dispose()
    return value


@dataclass
class Hops:
    """Per reading committed in a window: commit to published, published to applied (seconds)."""

    published: list[float]
    applied: list[float]
    total: list[float]


def event_hops(start: datetime, end: datetime) -> Hops:
    """Every `measurement.recorded` of the window, timed from the outbox (created_at, published_at)
    and the patient service's processed_events (processed_at): one PostgreSQL clock for all three."""
    engine = create_engine(DATABASES["MEASUREMENT_DATABASE_URL"])
    with engine.connect() as conn:
        sent = conn.execute(text("SELECT event_id, created_at, published_at FROM outbox WHERE event_type = "
                                 "'measurement.recorded' AND created_at BETWEEN :a AND :b"), {"a": start, "b": end}
                            ).all()  # fmt: skip
    engine.dispose()
    engine = create_engine(DATABASES["PATIENT_DATABASE_URL"])
    with engine.connect() as conn:
        applied = dict(conn.execute(text("SELECT event_id, processed_at FROM processed_events "
                                         "WHERE event_id = ANY(:ids)"), {"ids": [row.event_id for row in sent]}
                                    ).all())  # fmt: skip
    engine.dispose()
    hops = Hops([], [], [])
    for event_id, created, published in sent:
        if published is None or event_id not in applied:
            continue  # counted below as not yet through
        hops.published.append((published - created).total_seconds())
        hops.applied.append((applied[event_id] - published).total_seconds())
        hops.total.append((applied[event_id] - created).total_seconds())
    hops_missing = len(sent) - len(hops.total)
    if hops_missing:
        print(f"  ({hops_missing} of {len(sent)} events not yet applied when timed)", flush=True)
    return hops


def rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except FileNotFoundError:
        pass
    return 0.0


def children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def process_rss(stack: stack_module.Stack) -> dict[str, float]:
    """RSS of every service process; uvicorn's worker processes are listed one by one."""
    out = {}
    for name, pid in stack.pids().items():
        if name == "nginx":
            continue
        kids = children(pid)
        out[name] = rss_mb(pid)
        for i, kid in enumerate(kids):
            out[f"{name} worker {i + 1}"] = rss_mb(kid)
    return out


def percentile(samples: list[float], q: float) -> float:
    if not samples:
        return float("nan")
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def report(bench: Bench, writes: dict[str, Result], reads: dict[str, Result], small: dict[str, Result],
           large: dict[str, Result], sizes: tuple[int, int], rss: dict[str, float]) -> str:  # fmt: skip
    lines = [
        f"# Benchmark {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} cores, {platform.machine()}",
        "",
        f"wrk through NGINX, {bench.args.connections} connections (batch: 4), {bench.args.seconds:g} s per scenario; "
        f"workers per API: patient {os.environ.get('PATIENT_WORKERS', '1')}, "
        f"measurement {os.environ.get('MEASUREMENT_WORKERS', '1')}.",
        "",
        "API CPU: user and system time of the serving process per request (/proc), and its ratio to the "
        "baseline's. Commits: transactions committed in the serving database per request, by every client of "
        "it (the relay and consumer too); the API's own round trips are counted by the test suite.",
        "",
        "| scenario | per s | p50 ms | p99 ms | non-2xx | socket errors | ratio to baseline | API CPU ms/req "
        "| CPU ratio | commits/req |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]

    def row(result: Result, base: Result | None = None, unit: str = "") -> None:
        ratio = f"{result.per_s / base.rps:.2f}x{unit}" if base else ""
        cpu_ratio = f"{result.cpu_ms / base.cpu_ms:.2f}" if base and result.unit_factor == 1 else ""
        lines.append(f"| {result.name} | {result.per_s:,.0f} | {result.p50_ms:.1f} | {result.p99_ms:.1f} | "
                     f"{result.non_2xx} | {result.socket_errors} | {ratio} | {result.cpu_ms:.2f} | {cpu_ratio} | "
                     f"{result.commits:.2f} |")  # fmt: skip

    row(writes["baseline_post"])
    row(writes["post"], writes["baseline_post"])
    row(writes["batch"], writes["baseline_post"], " (readings/s)")
    row(writes["hl7"], writes["baseline_post"], " (readings/s)")
    row(reads["baseline_get"])
    row(reads["get_patient"], reads["baseline_get"])
    row(reads["first_page"], reads["baseline_get"])
    lag, hops = bench.lag, bench.hops
    hl7, post = writes["hl7"], writes["post"]
    lines += [
        "",
        f"HL7: {hl7.per_s:,.0f} readings/s over MLLP, {hl7.per_s / post.per_s:.2f}x the JSON POST's; ACK p99 "
        f"{hl7.p99_ms:.0f} ms; {hl7.non_2xx} ACKs other than AA (doc/hl7.md).",
    ]

    def spread(samples: list[float]) -> str:
        return f"p50 {percentile(samples, 0.5) * 1000:.0f} ms, p99 {percentile(samples, 0.99) * 1000:.0f} ms"

    lines += [
        "",
        f"Event lag during the POST scenario, for every reading it stored ({len(hops.total)} events): "
        f"commit to published {spread(hops.published)}; published to applied {spread(hops.applied)}; "
        f"commit to applied {spread(hops.total)}. Seen by a client (a reading posted, then its `latest_vitals` "
        f"polled on the patient): {spread(lag)} ({len(lag)} samples).",
        "",
        f"## Data size: {sizes[0]:,} vs {sizes[1]:,} rows (patients and measurements)",
        "",
        f"| read | per s at {sizes[0]:,} | p99 ms | per s at {sizes[1]:,} | p99 ms | cost ratio (large/small) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for key, small_result in small.items():
        big = large[key]
        lines.append(f"| {key.replace('_', ' ')} | {small_result.rps:,.0f} | {small_result.p99_ms:.1f} | "
                     f"{big.rps:,.0f} | {big.p99_ms:.1f} | {small_result.rps / big.rps:.2f} |")  # fmt: skip
    lines += machine_report(bench.costs, bench.rest)
    lines += ["", "## Memory after the runs (RSS)", "", "| process | MB |", "|---|---:|"]
    lines += [f"| {name} | {mb:.0f} |" for name, mb in rss.items()]
    failures = sum(r.non_2xx + r.socket_errors for r in [*writes.values(), *reads.values(), *small.values(),
                                                          *large.values()])  # fmt: skip
    lines += ["", f"Failed requests over all scenarios: {failures}."]
    return "\n".join(lines) + "\n"


def machine_report(costs: dict[str, Cost], rest: Usage) -> list[str]:
    """What a reading costs the machine, by process, and what the stack burns at rest."""
    columns = [("baseline_post", "baseline POST"), ("post", "POST a reading"), ("batch", "batch, per reading"),
               ("hl7", "HL7 ORU over MLLP")]  # fmt: skip
    roles = sorted({role for cost in costs.values() for role in cost.per_reading_ms})
    lines = [
        "",
        "## What a reading costs the machine",
        "",
        "CPU ms per reading stored, of every process (bench/machine.py), from the start of the load until the "
        "machine was back at its rest rate, that rate subtracted.",
        "",
        "| process | " + " | ".join(title for _, title in columns) + " |",
        "|---|" + "---:|" * len(columns),
    ]
    for role in roles:
        cells = [f"{costs[key].per_reading_ms.get(role, 0.0):.3f}" if key in costs else "" for key, _ in columns]
        lines.append(f"| {role} | " + " | ".join(cells) + " |")
    totals = [f"**{costs[key].total_ms:.2f}**" if key in costs else "" for key, _ in columns]
    lines.append("| **all** | " + " | ".join(totals) + " |")
    if "baseline_post" in costs and "post" in costs:
        ratio = costs["post"].total_ms / costs["baseline_post"].total_ms
        lines += ["", f"A reading costs the machine {ratio:.2f}x what the baseline's whole write costs."]
    at_rest = {role: rate for role, rate in rest.items() if role != "baseline"}
    busiest = ", ".join(f"{role} {rate * 100:.2f} %" for role, rate in sorted(at_rest.items(), key=lambda kv: -kv[1]))
    lines += ["", f"At rest (10 s, nothing asked): {sum(at_rest.values()) * 100:.2f} % of a core in all ({busiest})."]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10, help="length of each write/read scenario")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--hl7-seconds", type=float, default=60, help="length of the HL7 over MLLP scenario")
    parser.add_argument("--rows", type=int, default=5_000_000, help="table size of the large data-size run")
    parser.add_argument("--small-rows", type=int, default=10_000)
    parser.add_argument("--keep-data", action="store_true", help="keep the bench databases (to EXPLAIN queries)")
    args = parser.parse_args()

    bench = Bench(args)
    try:
        print("starting the stack and the baseline...", flush=True)
        bench.start()
        bench.seed_patients()
        print("writes:", flush=True)
        writes = bench.writes()
        print("reads:", flush=True)
        reads = bench.reads()
        print(f"data size: growing to {args.small_rows:,} rows...", flush=True)
        bench.clear_measurements()
        bench.grow(args.small_rows, args.small_rows)
        small = bench.size_reads(f"{args.small_rows:,}")
        print(f"data size: growing to {args.rows:,} rows...", flush=True)
        took = bench.grow(args.rows, args.rows)
        print(f"  (seeded in {took:.0f}s)", flush=True)
        large = bench.size_reads(f"{args.rows:,}")
        rss = process_rss(bench.stack)
        table = report(bench, writes, reads, small, large, (args.small_rows, args.rows), rss)
    finally:
        bench.stop()
        if not args.keep_data:  # millions of rows: gigabytes a later run would only drop
            for url in [*DATABASES.values(), BASELINE_DB]:
                drop_database(url)
    print()
    print(table)
    out = BENCH / "results" / f"{datetime.now(UTC):%Y-%m-%d-%H%M}-{os.cpu_count()}cores.md"
    out.write_text(table)
    print(f"saved {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
