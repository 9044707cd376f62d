"""Real stacks for the cross-service suites: on free ports, each in a RabbitMQ vhost of its own.

A stack is started with the same code `make up` uses (scripts/stack.py): both APIs, both relays,
both consumers, the dispatcher and NGINX, under a supervisord of its own, against databases of
its own.
"""

import contextlib
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from painkiller_testing.databases import truncate_all
from painkiller_testing.devauth import mint

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

import bootstrap  # noqa: E402
import stack as stack_module  # noqa: E402
from provisioning import SERVICES, BrokerUsers, database_env  # noqa: E402
from stack import free_port  # noqa: E402

# A superuser, to provision the test databases' roles; the stacks connect as those roles.
POSTGRES_ADMIN = os.environ.get("TEST_POSTGRES_ADMIN_URL") or bootstrap.admin_url()


def test_databases(suffix: str) -> dict[str, str]:
    """The environment that points a stack at databases `patients_<suffix>`, `measurements_<suffix>`."""
    return {
        **database_env("patient", POSTGRES_ADMIN, f"patients_{suffix}"),
        **database_env("measurement", POSTGRES_ADMIN, f"measurements_{suffix}"),
    }


E2E_DATABASES = test_databases("e2e")
T = TypeVar("T")
RABBITMQ = os.environ.get("E2E_RABBITMQ", "127.0.0.1:5672")


def rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True)


@contextlib.contextmanager
def broker() -> Iterator[BrokerUsers]:
    """A RabbitMQ virtual host of our own, with a user per service as `make up` makes them:
    queues and messages of other runs never leak in."""
    name = f"painkiller-test-{uuid.uuid4().hex[:8]}"
    rabbitmqctl("add_vhost", name)
    # The tests' own connections (watching events, forging them) use the broker's admin user.
    rabbitmqctl("set_permissions", "-p", name, "guest", ".*", ".*", ".*")
    users = BrokerUsers(
        vhost=name,
        names={service: f"{name}-{service}" for service in SERVICES},
        passwords={service: secrets.token_urlsafe(16) for service in SERVICES},
        admin=f"{name}-admin",
        admin_password=secrets.token_urlsafe(16),
        address=RABBITMQ,
    )
    users.create()
    try:
        yield users
    finally:
        rabbitmqctl("delete_vhost", name)
        users.delete()


def observer_url(vhost_name: str, address: str = RABBITMQ) -> str:
    """The test's own broker connection: not one of the stack's processes."""
    return f"amqp://guest:guest@{address}/{vhost_name}"


def vhost_of(stack: stack_module.Stack) -> str:
    return urllib.parse.unquote(stack.env["PATIENT_AMQP_URL"].rsplit("/", 1)[1])


def empty(databases: dict[str, str]) -> None:
    """Empty every table, as each database's owner."""
    for var, url in databases.items():
        if var.endswith("_MIGRATION_DATABASE_URL"):
            truncate_all(url)


@contextlib.contextmanager
def running_stack(
    databases: dict[str, str],
    users: BrokerUsers,
    overrides: dict[str, dict[str, str]] | None = None,
    replicas: int = 1,
    env: dict[str, str] | None = None,
) -> Iterator[stack_module.Stack]:
    """Start the whole stack with `users` on the broker; `overrides` is extra environment for
    single processes, `env` for all of them and NGINX's configuration. Rate limits are high
    enough for the fuzzer; tests of them use their own."""
    # Not under pytest's 0700 tmp dir: NGINX workers may run as another user and must read it.
    run_dir = Path(tempfile.mkdtemp(prefix="painkiller-test-"))
    run_dir.chmod(0o755)
    (run_dir / "traces").mkdir()  # each process's spans (painkiller_common.observability.tracing's file exporter)
    started = stack_module.Stack(
        run_dir=run_dir,
        nginx_port=free_port(),
        tls_port=free_port(),
        hl7_port=free_port(),
        hl7_tls_port=free_port(),
        hl7_listener_port=free_port(),
        patient_port=free_port(),
        measurement_port=free_port(),
        replicas=replicas,
        replica_ports={name: free_port() for name in stack_module.instances(replicas) if "-api-" in name},
        metrics_ports={name: free_port() for name in stack_module.instances(replicas)},
        supervisor_metrics_port=free_port(),
        # A ward's stream beats every second, so that a test hears one without waiting 15 s.
        env={
            **databases,
            **users.env(),
            "PAINKILLER_TRACE_DIR": str(run_dir / "traces"),
            "PATIENT_WARD_STREAM_HEARTBEAT_S": "1",
            **(env or {}),
        },  # fmt: skip
        process_env_overrides=overrides or {},
        rate_limit_rps=2000,
        rate_limit_burst=4000,
    )
    failed = False
    try:
        stack_module.up(started)
        yield started
    except BaseException:
        failed = True
        raise
    finally:
        started.supervisor.shutdown()
        empty(databases)
        if failed or os.environ.get("KEEP_STACK_LOGS"):  # the processes' logs explain a failure
            print(f"stack logs kept in {run_dir}")
        else:
            shutil.rmtree(run_dir, ignore_errors=True)


def eventually(check: Callable[[], T], *, timeout_s: float = 20, interval_s: float = 0.1) -> T:
    """The first truthy result of `check`, polled until `timeout_s` (events arrive asynchronously)."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = check()
        if result or time.monotonic() > deadline:
            assert result, f"not true within {timeout_s}s: {check.__doc__ or check}"
            return result
        time.sleep(interval_s)


def bearer(stack: stack_module.Stack, **claims: Any) -> dict[str, str]:
    """Authorization for a token minted with the stack's dev key (every scope by default)."""
    return {"Authorization": f"Bearer {mint(stack.auth_dir, **claims)}"}
