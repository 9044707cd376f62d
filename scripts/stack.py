"""Bring the Painkiller stack up natively, and down again: databases, migrations, APIs, NGINX.

`make up`, `make status` and `make down` call this; the end-to-end tests call the same functions,
so what the tests start is exactly what a developer starts. Processes are the same entry points
the containers run (`python -m <service> migrate|api`), every one of them under supervisord,
which restarts any that dies (scripts/supervision.py).
"""

import argparse
import functools
import json
import os
import random
import shutil
import signal
import socket
import string
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import bootstrap
from prometheus_client.parser import text_string_to_metric_families
from provisioning import BrokerUsers, auth_env, database_env, dev_certificate, load_secrets
from supervision import Program, Supervisor

from painkiller_common.events.broker_access import ADMIN_USER
from painkiller_testing.devauth import mint

ROOT = Path(__file__).resolve().parents[1]
NGINX_DIR = ROOT / "nginx"
# Debian builds NGINX's TCP proxy as a module (libnginx-mod-stream); other builds may have it built in.
# What a nurse's board reads: the ward's patients, their charts and the ward's stream (doc/ward.md).
WARD_SCOPE = "user/Patient.rs"
STREAM_MODULE = "/usr/lib/nginx/modules/ngx_stream_module.so"
OBSERVABILITY = ROOT / "observability"


@dataclass
class Stack:
    run_dir: Path
    nginx_port: int = 8080
    tls_port: int = 8443
    patient_port: int = 8001
    measurement_port: int = 8002
    # HL7 v2 over MLLP (doc/hl7.md): NGINX's plain and TLS ports, and the listener's own behind it.
    hl7_port: int = field(default_factory=lambda: int(os.environ.get("HL7_MLLP_PORT", "2575")))
    hl7_tls_port: int = field(default_factory=lambda: int(os.environ.get("HL7_MLLP_TLS_PORT", "2576")))
    hl7_listener_port: int = 2577
    # Extra environment for every process, e.g. the test databases' URLs.
    env: dict[str, str] = field(default_factory=dict)
    # Extra environment for one process only, by process name (e.g. a worker behind a test proxy).
    process_env_overrides: dict[str, dict[str, str]] = field(default_factory=dict)
    # NGINX's limits (doc/security.md); rate_limit_rps=0 turns the rate limits off.
    rate_limit_rps: int = field(default_factory=lambda: int(os.environ.get("RATE_LIMIT_RPS", "100")))
    rate_limit_burst: int = field(default_factory=lambda: int(os.environ.get("RATE_LIMIT_BURST", "200")))
    rate_limit_connections: int = field(default_factory=lambda: int(os.environ.get("RATE_LIMIT_CONNECTIONS", "200")))
    allowed_hosts: str = field(default_factory=lambda: os.environ.get("ALLOWED_HOSTS", "localhost 127.0.0.1"))
    # How many of each process (doc/scaling.md): the APIs behind NGINX as upstream members.
    replicas: int = field(default_factory=lambda: int(os.environ.get("REPLICAS", "1")))
    # The port of each API replica after the first, by instance name ("patient-api-2"); by
    # default the first's port plus 10 per replica.
    replica_ports: dict[str, int] = field(default_factory=dict)
    # Each process's /metrics port, by instance name (doc/operations.md); by default 9101 onwards.
    metrics_ports: dict[str, int] = field(default_factory=dict)
    # The supervisor's event listener's /metrics: restarts of every process (doc/operations.md).
    supervisor_metrics_port: int = 9100

    def __post_init__(self) -> None:
        for number, name in enumerate(instances(self.replicas)):
            self.metrics_ports.setdefault(name, 9101 + number)
            kind, replica = kind_of(name)
            if replica > 1 and PROCESSES[kind][2]:
                self.replica_ports.setdefault(name, port_of(self, kind) + 10 * (replica - 1))

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.nginx_port}"

    def api_port(self, name: str) -> int:
        """The port of an API instance ("patient-api", "patient-api-2")."""
        return self.replica_ports.get(name) or port_of(self, kind_of(name)[0])

    @property
    def tls_url(self) -> str:
        return f"https://127.0.0.1:{self.tls_port}"

    @property
    def auth_dir(self) -> Path:
        """The dev signing key (when no identity provider is configured) and service tokens."""
        return self.run_dir / "auth"

    def process_env(self, name: str = "") -> dict[str, str]:
        metrics = (
            {f"{name.split('-')[0].upper()}_METRICS_PORT": str(self.metrics_ports[name])}
            if name in self.metrics_ports
            else {}
        )
        own_port = (
            {f"{name.split('-')[0].upper()}_PORT": str(self.replica_ports[name])} if name in self.replica_ports else {}
        )
        return {
            # The dev stack's webhook receivers are on this machine; none is allowed by default.
            "WEBHOOK_ALLOWED_HOSTS": "127.0.0.1 localhost",
            **os.environ,
            "PATIENT_PORT": str(self.patient_port),
            "MEASUREMENT_PORT": str(self.measurement_port),
            "MEASUREMENT_PATIENT_SERVICE_URL": f"http://127.0.0.1:{self.patient_port}",
            "MEASUREMENT_HL7_PORT": str(self.hl7_listener_port),
            "MEASUREMENT_HL7_PROXY_PROTOCOL": "true",  # NGINX's stream proxy is in front
            **own_port,
            **metrics,
            **self.env,
            **self.process_env_overrides.get(name, {}),
        }

    @property
    def targets_file(self) -> Path:
        return self.run_dir / "prometheus-targets.json"

    @functools.cached_property
    def supervisor(self) -> Supervisor:
        """What runs every process of this stack, and restarts any that dies. One per stack, so that
        the one that started supervisord also reaps it when it stops."""
        return Supervisor(self.run_dir)

    def pids(self) -> dict[str, int]:
        """Each running process's pid, by name ("patient-api", ..., "nginx")."""
        return {info["name"]: info["pid"] for info in self.supervisor.processes() if info["pid"]}


# name -> (module, command, readiness URL path or None for workers); the order is the start order.
PROCESSES = {
    "patient-api": ("patient_service", "api", "/api/v1/patient/health/ready"),
    "measurement-api": ("measurement_service", "api", "/api/v1/measures/health/ready"),
    "patient-relay": ("patient_service", "relay", None),
    "patient-consumer": ("patient_service", "consumer", None),
    "patient-dispatcher": ("patient_service", "dispatcher", None),  # webhooks (doc/alerts.md)
    "measurement-relay": ("measurement_service", "relay", None),
    "measurement-consumer": ("measurement_service", "consumer", None),
    "measurement-hl7": ("measurement_service", "hl7", None),  # MLLP (doc/hl7.md)
}
# Kinds that run once whatever REPLICAS says: the MLLP listener has one port behind NGINX.
SINGLE = {"measurement-hl7"}
MIGRATIONS = ("patient_service", "measurement_service")


def instances(replicas: int) -> list[str]:
    """Every process to start, in start order: "patient-api", then "patient-api-2"... per kind."""
    return [
        name if n == 1 else f"{name}-{n}"
        for name in PROCESSES
        for n in range(1, (1 if name in SINGLE else replicas) + 1)
    ]


def kind_of(instance: str) -> tuple[str, int]:
    """("patient-api", 2) for "patient-api-2"; ("patient-api", 1) for "patient-api"."""
    kind, _, number = instance.rpartition("-")
    return (kind, int(number)) if number.isdigit() else (instance, 1)


REQUIRED = {
    # env var: (default URL, what, how to start it)
    "PATIENT_DATABASE_URL": (
        "postgresql://127.0.0.1:5432/",
        "PostgreSQL",
        "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start",
    ),
    "MEASUREMENT_DATABASE_URL": (
        "postgresql://127.0.0.1:5432/",
        "PostgreSQL",
        "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start",
    ),
    "PATIENT_AMQP_URL": ("amqp://127.0.0.1:5672/", "RabbitMQ", "rabbitmq-server -detached"),
    "MEASUREMENT_AMQP_URL": ("amqp://127.0.0.1:5672/", "RabbitMQ", "rabbitmq-server -detached"),
}


def require_servers(stack: Stack) -> None:
    """Fail with a plain message, not a traceback, when PostgreSQL or RabbitMQ is not there."""
    env = stack.process_env()
    for var, (default, what, start) in REQUIRED.items():
        url = urllib.parse.urlsplit(env.get(var, default))
        address = (url.hostname or "127.0.0.1", url.port or urllib.parse.urlsplit(default).port)
        try:
            socket.create_connection(address, timeout=3).close()
        except OSError:
            sys.exit(f"{what} is not reachable at {address[0]}:{address[1]} ({var}). Start it, e.g.\n  {start}")


def migrate(stack: Stack) -> None:
    """Create each service's database if missing and run its migrations."""
    require_servers(stack)
    for module in MIGRATIONS:
        subprocess.run([sys.executable, "-m", module, "migrate"], env=stack.process_env(), check=True)


def runtime_env(env: dict[str, str]) -> dict[str, str]:
    """A running process's environment: without the PostgreSQL superuser's and the broker admin's
    URLs, which only `migrate` uses (doc/security.md)."""
    return {var: value for var, value in env.items() if "ADMIN" not in var}


def programs(stack: Stack) -> list[Program]:
    """Every process of the stack, in start order, NGINX last: what supervisord keeps running.
    Each program's environment is what it adds to the stack's (`process_env()`)."""
    shared = runtime_env(stack.process_env())
    listed = []
    for name in instances(stack.replicas):
        module, command, _ = PROCESSES[kind_of(name)[0]]
        own = {var: value for var, value in runtime_env(stack.process_env(name)).items() if shared.get(var) != value}
        command_line = [sys.executable, "-m", module, command]
        listed.append(Program(name, command_line, own, stack.run_dir / f"{name}.log", live=live_url(stack, name)))
    nginx = nginx_command(stack, "-g", "daemon off;")
    listed.append(Program("nginx", nginx, {}, stack.run_dir / "nginx.log"))
    return listed


_HANDED_OUT: set[int] = set()


def free_port() -> int:
    """A port nothing listens on, for a stack started on free ports (the tests', the bench's).

    Not one from the kernel's ephemeral range (what binding port 0 gives): in the seconds before the
    stack binds it, any outgoing connection may take it as its local port, and a client socket on
    a port, open or in TIME_WAIT for a minute after, makes a listener's bind fail even with
    SO_REUSEADDR. Below that range only programs that ask for a port get one."""
    low = _ephemeral_low()
    while True:
        port = random.randrange(max(1024, low - 12000), low)
        if port in _HANDED_OUT:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        _HANDED_OUT.add(port)
        return port


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768  # Linux's default


def live_url(stack: Stack, name: str) -> str | None:
    """Where a process says it is not hung: an API's /health/live, a worker's /live on its metrics
    port (observability/metrics.py); None for a worker without one."""
    ready_path = PROCESSES[kind_of(name)[0]][2]
    if ready_path:
        return f"http://127.0.0.1:{stack.api_port(name)}{ready_path.removesuffix('/ready')}/live"
    port = stack.metrics_ports.get(name)
    return f"http://127.0.0.1:{port}/live" if port else None


def port_of(stack: Stack, name: str) -> int:
    return stack.patient_port if name.startswith("patient") else stack.measurement_port


def wait_ready(
    url: str, *, timeout_s: float = 60, process: subprocess.Popen[bytes] | None = None, log: Path | None = None
) -> None:
    """Return once `url` answers 200; raise if `process` exits first or the time runs out, with
    the end of the process's `log` when given (why it did not come up)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"process for {url} exited with {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} was not ready within {timeout_s:.0f}s{log_tail(log)}")


def log_tail(log: Path | None, lines: int = 20) -> str:
    if log is None or not log.exists():
        return ""
    return f"; the end of {log}:\n" + "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


def nginx_binary() -> str:
    """NGINX's path; installed with its stream module (the MLLP port) from Debian's packages when
    missing and we are root, as `make up` does (scripts/bootstrap.py)."""
    try:
        bootstrap.install([bootstrap.NGINX, bootstrap.NGINX_STREAM])
    except bootstrap.NotReady as exc:
        sys.exit(str(exc))
    return shutil.which("nginx") or "/usr/sbin/nginx"


def render(template: Path, values: dict[str, str]) -> str:
    # safe_substitute leaves NGINX's own $variables alone: only our ${NAMES} are filled in.
    return string.Template(template.read_text()).safe_substitute(values)


def render_nginx(stack: Stack) -> Path:
    """Write the native NGINX configuration under run_dir/nginx and return the main file."""
    conf_dir = stack.run_dir / "nginx"
    (conf_dir / "tmp").mkdir(parents=True, exist_ok=True)
    (conf_dir / "conf.d").mkdir(exist_ok=True)
    certificate, key = dev_certificate(stack.run_dir / "tls")
    values = {
        "RUN_DIR": str(conf_dir),
        "LISTEN_PORT": f"127.0.0.1:{stack.nginx_port}",
        "TLS_LISTEN_PORT": f"127.0.0.1:{stack.tls_port}",
        "TLS_CERTIFICATE": str(certificate),
        "TLS_CERTIFICATE_KEY": str(key),
        "ALLOWED_HOSTS": stack.allowed_hosts,
        "RATE_LIMIT_RPS": str(stack.rate_limit_rps),
        "RATE_LIMIT_RATE": str(max(stack.rate_limit_rps, 1)),
        "RATE_LIMIT_BURST": str(stack.rate_limit_burst),
        "RATE_LIMIT_CONNECTIONS": str(stack.rate_limit_connections),
        "PATIENT_UPSTREAM": upstream(stack, "patient-api"),
        "MEASUREMENT_UPSTREAM": upstream(stack, "measurement-api"),
        "ACCESS_LOG": str(conf_dir / "access.log"),
        "LOAD_STREAM_MODULE": f"load_module {STREAM_MODULE};" if Path(STREAM_MODULE).exists() else "",
        "HL7_LISTEN_PORT": f"127.0.0.1:{stack.hl7_port}",
        "HL7_TLS_LISTEN_PORT": f"127.0.0.1:{stack.hl7_tls_port}",
        "HL7_UPSTREAM": f"127.0.0.1:{stack.hl7_listener_port}",
        "HL7_TLS_CLIENT_CA": os.environ.get("HL7_TLS_CLIENT_CA", str(certificate)),
        "HL7_TLS_VERIFY_CLIENT": os.environ.get("HL7_TLS_VERIFY_CLIENT", "optional"),
        "MLLP_ACCESS_LOG": str(conf_dir / "mllp.log"),
        "WARD_ROOT": str(ROOT),  # the ward board's files are ROOT/ward/
        **ward_sign_in(stack.env),
    }
    (conf_dir / "conf.d" / "painkiller.conf").write_text(
        render(NGINX_DIR / "templates" / "painkiller.conf.template", values)
    )
    (conf_dir / "stream.d").mkdir(exist_ok=True)
    (conf_dir / "stream.d" / "mllp.conf").write_text(render(NGINX_DIR / "stream" / "mllp.conf.template", values))
    main = conf_dir / "nginx.conf"
    main.write_text(render(NGINX_DIR / "nginx.native.conf.template", values))
    return main


def ward_sign_in(env: dict[str, str]) -> dict[str, str]:
    """The board's OpenID provider (WARD_OIDC_ISSUER, WARD_OIDC_CLIENT_ID, WARD_OIDC_SCOPE), from
    the stack's environment or this process's; none by default (doc/ward.md)."""

    def setting(name: str, default: str) -> str:
        return env.get(name) or os.environ.get(name, default)

    issuer = setting("WARD_OIDC_ISSUER", "")
    parts = urllib.parse.urlsplit(issuer)
    return {
        "WARD_OIDC_ISSUER": issuer,
        "WARD_OIDC_ORIGIN": f"{parts.scheme}://{parts.netloc}" if issuer else "",
        "WARD_OIDC_CLIENT_ID": setting("WARD_OIDC_CLIENT_ID", "painkiller-ward"),
        "WARD_OIDC_SCOPE": setting("WARD_OIDC_SCOPE", "openid " + WARD_SCOPE),
    }


def upstream(stack: Stack, kind: str) -> str:
    """The `server` lines' addresses of an API's upstream: one per replica (the template writes
    `server ${..._UPSTREAM};`, so further members follow as `; server <address>`)."""
    names = [name for name in instances(stack.replicas) if kind_of(name)[0] == kind]
    return "; server ".join(f"127.0.0.1:{stack.api_port(name)}" for name in names)


def nginx_command(stack: Stack, *args: str) -> list[str]:
    main = stack.run_dir / "nginx" / "nginx.conf"
    return [nginx_binary(), "-p", str(main.parent), "-c", str(main), *args]


def prepare_nginx(stack: Stack) -> None:
    """Write NGINX's configuration and have NGINX check it: a mistake stops here, not in a loop of restarts."""
    render_nginx(stack)
    subprocess.run(nginx_command(stack, "-t", "-q"), check=True)


def start_nginx(stack: Stack) -> subprocess.Popen[bytes]:
    """An NGINX of its own, outside the supervisor (a test's second NGINX with other limits)."""
    prepare_nginx(stack)
    args = nginx_command(stack, "-g", "daemon off;")
    log = (stack.run_dir / "nginx.log").open("ab")
    return subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def up(stack: Stack) -> None:
    """Migrate, start every process and NGINX under supervisord, and wait until all answer
    through NGINX."""
    stack.run_dir.mkdir(parents=True, exist_ok=True)
    if "AUTH_ISSUER" not in {**os.environ, **stack.env}:  # no identity provider: trust the dev key
        stack.env.update(auth_env(stack.auth_dir))
    migrate(stack)
    prepare_nginx(stack)
    stack.supervisor.write_config(programs(stack), metrics_port=stack.supervisor_metrics_port)
    stack.supervisor.start(runtime_env(stack.process_env()))
    for name in instances(stack.replicas):
        ready_path = PROCESSES[kind_of(name)[0]][2]
        if ready_path:
            wait_ready(f"http://127.0.0.1:{stack.api_port(name)}{ready_path}", log=stack.run_dir / f"{name}.log")
    for _, _, ready_path in PROCESSES.values():
        if ready_path:
            wait_ready(stack.url + ready_path)
    write_targets(stack)


def write_targets(stack: Stack) -> None:
    """The running processes' /metrics, in Prometheus' file_sd format: a `job` per process kind."""
    targets = [
        {"targets": [f"127.0.0.1:{port}"], "labels": {"job": kind_of(name)[0], "service": name.split("-")[0]}}
        for name, port in stack.metrics_ports.items()
    ]
    targets.append({"targets": [f"127.0.0.1:{stack.supervisor_metrics_port}"], "labels": {"job": "supervisor"}})
    stack.targets_file.write_text(json.dumps(targets, indent=2) + "\n")


def prometheus_binary() -> str:
    """Prometheus' path; installed from Debian's packages when missing and we are root."""
    found = shutil.which("prometheus")
    if found:
        return found
    if os.geteuid() != 0:
        sys.exit("Prometheus is not installed. Install it (e.g. `sudo apt-get install -y prometheus`) and run again.")
    print("Prometheus is missing: installing it from the system packages", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True)
    subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", "prometheus"], check=True, env=env)
    return shutil.which("prometheus") or "/usr/bin/prometheus"


def start_prometheus(stack: Stack, *, port: int, scrape_interval: str) -> subprocess.Popen[bytes]:
    """A real Prometheus scraping the stack's targets file, with the repository's rules."""
    home = stack.run_dir / "prometheus"
    home.mkdir(parents=True, exist_ok=True)
    values = {
        "SCRAPE_INTERVAL": scrape_interval,
        "RULES": str(OBSERVABILITY / "rules.yml"),
        "TARGETS": str(stack.targets_file),
    }
    config = home / "prometheus.yml"
    config.write_text(render(OBSERVABILITY / "prometheus.yml", values))
    log = (stack.run_dir / "prometheus.log").open("ab")
    args = [prometheus_binary(), f"--config.file={config}", f"--storage.tsdb.path={home / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}", "--storage.tsdb.retention.time=2d"]  # fmt: skip
    process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    (stack.run_dir / "prometheus.pid").write_text(str(process.pid))
    wait_ready(f"http://127.0.0.1:{port}/-/ready", process=process)
    return process


def stop(processes: list[subprocess.Popen[bytes]]) -> None:
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    for process in processes:
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def down(stack: Stack) -> None:
    """Stop what `up` started: supervisord stops every process, then itself; and Prometheus."""
    if stack.supervisor.pid_file.exists():
        stack.supervisor.shutdown()
        print("stopped every process and their supervisor")
    for pid_file in sorted(stack.run_dir.glob("*.pid")):  # Prometheus (`make observe`)
        try:
            os.kill(int(pid_file.read_text().strip()), signal.SIGTERM)
            print(f"stopped {pid_file.stem}")
        except (ProcessLookupError, ValueError):
            pass
        pid_file.unlink()


def status(stack: Stack) -> int:
    """A line per process: its state, pid, uptime and restarts; 0 when every one runs (STARTING is a
    process started less than 5 s ago, not yet proven; BACKOFF, EXITED or FATAL one that is down)."""
    if not stack.supervisor.answering():
        print(f"The stack is not running (no supervisor answers at {stack.supervisor.socket}): `make up` starts it.")
        return 1
    restarts = restart_counts(stack)
    processes = stack.supervisor.processes()
    print(f"{'process':<26}{'state':<10}{'pid':>8}  {'uptime':>10}{'restarts':>10}")
    for info in processes:
        hours, rest = divmod(info["now"] - info["start"] if info["pid"] else 0, 3600)
        uptime = f"{hours}:{rest // 60:02}:{rest % 60:02}"
        restarted = restarts.get(info["name"], 0)
        print(f"{info['name']:<26}{info['statename']:<10}{info['pid'] or '-':>8}  {uptime:>10}{restarted:>10.0f}")
    return 0 if all(info["statename"] in ("RUNNING", "STARTING") for info in processes) else 1


def restart_counts(stack: Stack) -> dict[str, float]:
    """Restarts by process, from the supervisor's event listener (scripts/process_events.py)."""
    return listener_counts(stack, "painkiller_process_restarts_total")


def listener_counts(stack: Stack, counter: str) -> dict[str, float]:
    """A counter of the supervisor's event listener (scripts/process_events.py), by process."""
    url = f"http://127.0.0.1:{stack.supervisor_metrics_port}/metrics"
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            text = response.read().decode()
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return {}
    return {
        sample.labels["process"]: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == counter
    }


def dev_database_env(run_dir: Path) -> dict[str, str]:
    """The dev stack's database URLs, its roles' passwords kept in run_dir."""
    passwords = load_secrets(run_dir / "credentials.json")
    admin = bootstrap.admin_url()  # scripts/bootstrap.py made it, or POSTGRES_ADMIN_URL
    return {
        **database_env("patient", admin, "patients", passwords),
        **database_env("measurement", admin, "measurements", passwords),
    }


def dev_env(run_dir: Path) -> dict[str, str]:
    """Least-privilege roles and broker users for the dev stack, with passwords kept in run_dir;
    a URL already set in the environment is used as it is."""
    passwords = load_secrets(run_dir / "credentials.json")
    env = dev_database_env(run_dir)
    broker = BrokerUsers(
        vhost="/",
        names={"patient": "painkiller_patient", "measurement": "painkiller_measurement"},
        passwords={service: passwords[f"{service}_amqp"] for service in ("patient", "measurement")},
        admin=ADMIN_USER,
        admin_password=passwords["broker_admin"],
    )
    if not any(var in os.environ for var in ("PATIENT_AMQP_URL", "MEASUREMENT_AMQP_URL")):
        broker.create()
        env.update(broker.env())
    return {var: value for var, value in env.items() if var not in os.environ}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["up", "down", "observe", "status"])
    args = parser.parse_args()
    stack = Stack(
        run_dir=ROOT / ".run",
        nginx_port=int(os.environ.get("NGINX_PORT", "8080")),
        tls_port=int(os.environ.get("NGINX_TLS_PORT", "8443")),
        patient_port=int(os.environ.get("PATIENT_PORT", "8001")),
        measurement_port=int(os.environ.get("MEASUREMENT_PORT", "8002")),
        supervisor_metrics_port=int(os.environ.get("SUPERVISOR_METRICS_PORT", "9100")),
    )
    if args.command == "down":
        down(stack)
        return
    if args.command == "status":
        sys.exit(status(stack))
    if args.command == "observe":
        port = int(os.environ.get("PROMETHEUS_PORT", "9090"))
        start_prometheus(stack, port=port, scrape_interval="15s")
        print(f"Prometheus is up at http://127.0.0.1:{port}, scraping {stack.targets_file} (doc/operations.md)")
        return
    down(stack)  # a second `make up` restarts cleanly instead of failing on busy ports
    time.sleep(0.5)
    stack.env.update(dev_env(stack.run_dir))
    up(stack)
    print(f"Painkiller is up at {stack.url} and {stack.tls_url} (self-signed certificate)")
    print("  Every route needs a bearer token: `make token` prints one (doc/security.md).")
    print(f"  Swagger UI: {stack.url}/api/v1/patient/docs and {stack.url}/api/v1/measures/docs")
    nurse = mint(stack.auth_dir, scope=WARD_SCOPE, subject="dev-nurse", ttl_s=12 * 3600)
    print(f"  Ward board, signed in as a dev nurse for 12 h: {stack.url}/ward/?ward=4B#access_token={nurse}")
    print(f"  Logs: {stack.run_dir}/*.log; every process and its restarts: `make status`; stop with `make down`")


if __name__ == "__main__":
    main()
