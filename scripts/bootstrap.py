"""Make this machine ready for `make up` and `make test`: PostgreSQL, RabbitMQ and NGINX installed
and running, and a PostgreSQL superuser with a password for setting up the databases.

Standard library only: it runs before the venv exists. As root on Debian or Ubuntu it installs what
is missing from the distribution's packages and starts the servers without systemd (containers and
CI machines have none); otherwise it says in plain words what is missing and the command that
fixes it, and exits 1. Nothing is installed, started or created twice. Servers elsewhere:
POSTGRES_ADMIN_URL, PATIENT_AMQP_URL and the others of doc/operations.md ("Servers").

    python3 scripts/bootstrap.py [--for up|tests]   check, install, start, create the admin role
    python3 scripts/bootstrap.py --admin-url        print the PostgreSQL admin URL to use
"""

import argparse
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RUN_DIR = ROOT / ".run"
CREDENTIALS = RUN_DIR / "credentials.json"
ADMIN_ROLE = "painkiller_admin"
POSTGRES = ("127.0.0.1", 5432)
RABBITMQ = ("127.0.0.1", 5672)
# pg_trgm, which the patient search uses, can be created by a database's owner from PostgreSQL 13.
OLDEST_POSTGRES = 130000
START_WAIT_S = 120


class NotReady(Exception):
    """What is missing, in words a newcomer can act on."""


@dataclass(frozen=True)
class Package:
    name: str  # Debian's package
    paths: tuple[str, ...]  # any one of them there: installed

    def installed(self) -> bool:
        # A command on the PATH, or an absolute path (sbin is not on a normal user's PATH).
        return any(Path(path).exists() if path.startswith("/") else shutil.which(path) for path in self.paths)


SERVERS = [
    Package("postgresql", ("pg_ctlcluster",)),
    Package("rabbitmq-server", ("rabbitmq-server", "/usr/sbin/rabbitmq-server")),
]
NGINX = Package("nginx", ("nginx", "/usr/sbin/nginx"))
# NGINX's TCP proxy, for HL7 v2 over MLLP (doc/hl7.md); Debian builds it as a module of its own.
NGINX_STREAM = Package("libnginx-mod-stream", ("/usr/lib/nginx/modules/ngx_stream_module.so",))
# Continuous backups of the local cluster, and the recovery drill (scripts/backups.py).
PGBACKREST = Package("pgbackrest", ("pgbackrest",))
# What the container tests need beyond the stack (tests/containers).
TEST_TOOLS = [Package(name, (name, f"/usr/sbin/{name}")) for name in ("podman", "runc", "debootstrap")]
# The ward board's browser tests drive Debian's Chromium through its chromedriver (tests/e2e).
TEST_TOOLS += [Package("chromium", ("chromium", "/usr/bin/chromium")),
               Package("chromium-driver", ("chromedriver", "/usr/bin/chromedriver"))]  # fmt: skip


def external_postgres() -> bool:
    return bool(os.environ.get("POSTGRES_ADMIN_URL"))


def external_rabbitmq() -> bool:
    return bool(os.environ.get("PATIENT_AMQP_URL") or os.environ.get("MEASUREMENT_AMQP_URL"))


def needed(purpose: str) -> list[Package]:
    packages = [NGINX, NGINX_STREAM]
    packages += [p for p in SERVERS if not (p.name == "postgresql" and external_postgres())]
    packages += [PGBACKREST] if purpose == "tests" or not external_postgres() else []
    packages = [p for p in packages if not (p.name == "rabbitmq-server" and external_rabbitmq())]
    return packages + (TEST_TOOLS if purpose == "tests" else [])


def is_root() -> bool:
    return os.geteuid() == 0


def install(packages: list[Package]) -> None:
    missing = [p.name for p in packages if not p.installed()]
    if not missing:
        return
    command = f"apt-get install -y {' '.join(missing)}"
    if not is_root() or not shutil.which("apt-get"):
        raise NotReady(
            f"Painkiller needs {', '.join(missing)}, which this machine does not have. Install them:\n"
            f"  sudo {command}\n"
            "or point it at servers elsewhere (POSTGRES_ADMIN_URL, PATIENT_AMQP_URL... doc/operations.md)."
        )
    print(f"installing {' '.join(missing)} from the distribution's packages", flush=True)
    quiet = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    run(["apt-get", "update", "-qq"], env=quiet)
    run(["apt-get", "install", "-y", "-qq", *missing], env=quiet)


def run(args: list[str], *, stdin: str | None = None, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(args, input=stdin, env=env, capture_output=True, text=True, check=False, cwd="/")
    if result.returncode != 0:
        raise NotReady(f"`{' '.join(args)}` failed ({result.returncode}):\n{(result.stderr or result.stdout)[-2000:]}")
    return result.stdout


def answers(address: tuple[str, int]) -> bool:
    try:
        socket.create_connection(address, timeout=2).close()
    except OSError:
        return False
    return True


def wait_for(address: tuple[str, int], what: str) -> None:
    deadline = time.monotonic() + START_WAIT_S
    while not answers(address):
        if time.monotonic() > deadline:
            raise NotReady(f"{what} was started but does not answer on {address[0]}:{address[1]}: see its log.")
        time.sleep(0.5)


def start_postgresql() -> None:
    if answers(POSTGRES):
        return
    clusters = [line.split() for line in run(["pg_lsclusters", "--no-header"]).splitlines() if line.strip()]
    if not clusters:
        raise NotReady(
            "PostgreSQL is installed but has no cluster: create one with\n  sudo pg_createcluster --start 15 main"
        )
    version, name = clusters[0][0], clusters[0][1]
    command = ["pg_ctlcluster", "--skip-systemctl-redirect", version, name, "start"]
    if not is_root():
        raise NotReady(f"PostgreSQL is installed but not running. Start it:\n  sudo {' '.join(command)}")
    print(f"starting PostgreSQL {version}/{name}", flush=True)
    run(command)
    wait_for(POSTGRES, "PostgreSQL")


def start_rabbitmq() -> None:
    if answers(RABBITMQ):
        return
    if not is_root():
        raise NotReady("RabbitMQ is installed but not running. Start it:\n  sudo rabbitmq-server -detached")
    node_up = subprocess.run(["rabbitmq-diagnostics", "-q", "ping", "--timeout", "10"], capture_output=True)
    if node_up.returncode == 0:  # the node runs, its application was stopped (`rabbitmqctl stop_app`)
        print("starting the RabbitMQ application", flush=True)
        run(["rabbitmqctl", "-q", "start_app"])
    else:
        print("starting RabbitMQ", flush=True)
        run(["rabbitmq-server", "-detached"])
    wait_for(RABBITMQ, "RabbitMQ")
    run(["rabbitmqctl", "-q", "await_startup"])  # the port opens before the broker takes users


def credentials() -> dict[str, str]:
    return json.loads(CREDENTIALS.read_text()) if CREDENTIALS.exists() else {}


def keep_credential(name: str, value: str) -> None:
    kept = credentials()
    RUN_DIR.mkdir(parents=True, exist_ok=True)
    CREDENTIALS.touch(mode=0o600)
    CREDENTIALS.write_text(json.dumps({**kept, name: value}, indent=2))


def ensure_admin_role() -> None:
    """A superuser with a password, made over the local socket as the `postgres` OS user (no
    `trust` needed: Debian's default is peer there, scram over TCP), kept in .run/credentials.json
    (0600). `migrate` creates each service's roles and database with it; nothing else uses it."""
    password = credentials().get("postgres_admin") or secrets.token_urlsafe(24)  # [A-Za-z0-9_-] only
    sql = f"""
        SELECT current_setting('server_version_num')::int >= {OLDEST_POSTGRES} AS recent \\gset
        \\if :recent
        \\else
          \\echo 'PostgreSQL 13 or newer is needed (pg_trgm must be a trusted extension).'
          \\quit
        \\endif
        SELECT 'CREATE ROLE {ADMIN_ROLE}' WHERE NOT EXISTS
          (SELECT FROM pg_roles WHERE rolname = '{ADMIN_ROLE}') \\gexec
        ALTER ROLE {ADMIN_ROLE} LOGIN SUPERUSER PASSWORD '{password}';
    """
    if not is_root():
        raise NotReady(
            "Setting up PostgreSQL needs root (to act as the `postgres` user), or a superuser URL:\n"
            "  POSTGRES_ADMIN_URL=postgresql+psycopg://<user>:<password>@<host>:5432/postgres make up"
        )
    psql = ["runuser", "-u", "postgres", "--", "psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", "postgres"]
    said = run(psql, stdin=sql).strip()
    if said:
        raise NotReady(said)
    keep_credential("postgres_admin", password)


def admin_url() -> str:
    """The URL `migrate` and the tests set up databases with: POSTGRES_ADMIN_URL when given, else
    the role this script made, else (a machine set up by hand with `trust`) postgres itself."""
    if os.environ.get("POSTGRES_ADMIN_URL"):
        # On psycopg 3, the driver every process uses, whatever driver the URL was written for
        # (as the services' settings read theirs: painkiller_common/settings.py).
        return re.sub(r"^postgres(?:ql)?(?:\+\w+)?://", "postgresql+psycopg://", os.environ["POSTGRES_ADMIN_URL"])
    password = credentials().get("postgres_admin")
    if password:
        return f"postgresql+psycopg://{ADMIN_ROLE}:{password}@{POSTGRES[0]}:{POSTGRES[1]}/postgres"
    return f"postgresql+psycopg://postgres@{POSTGRES[0]}:{POSTGRES[1]}/postgres"


def ports_free() -> None:
    """The stack's ports, unless this checkout's stack holds them (`make up` restarts it)."""
    pid_file = RUN_DIR / "supervisord.pid"
    if pid_file.exists() and Path(f"/proc/{pid_file.read_text().strip()}").exists():
        return
    ports = {var: int(os.environ.get(var, default)) for var, default in PORTS.items()}
    taken = [f"{port} ({var})" for var, port in ports.items() if answers(("127.0.0.1", port))]
    if taken:
        raise NotReady(
            f"Another program listens on {', '.join(taken)}. Stop it (`ss -ltnp` shows which) or choose "
            "other ports, e.g. NGINX_PORT=8081 make up."
        )


PORTS = {"NGINX_PORT": 8080, "NGINX_TLS_PORT": 8443, "PATIENT_PORT": 8001, "MEASUREMENT_PORT": 8002,
         "SUPERVISOR_METRICS_PORT": 9100}  # fmt: skip


def prepare(purpose: str) -> None:
    install(needed(purpose))
    if not external_postgres():
        start_postgresql()
        ensure_admin_role()
    if not external_rabbitmq():
        start_rabbitmq()
    if purpose == "up":
        ports_free()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--for", dest="purpose", choices=["up", "tests"], default="up")
    parser.add_argument("--admin-url", action="store_true", help="print the PostgreSQL admin URL and exit")
    args = parser.parse_args()
    if args.admin_url:
        print(admin_url())
        return
    try:
        prepare(args.purpose)
    except NotReady as problem:
        print(f"\n{problem}\n", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
