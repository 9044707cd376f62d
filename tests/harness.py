"""Real stacks for the cross-service suites: on free ports, each in a RabbitMQ vhost of its own.

A stack is started with the same code `make up` uses (scripts/stack.py): both APIs, both relays,
both consumers and NGINX, against databases of its own.
"""

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

from painkiller_common.testing import truncate_all

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

import stack as stack_module  # noqa: E402

E2E_DATABASES = {
    "PATIENT_DATABASE_URL": os.environ.get(
        "E2E_PATIENT_DATABASE_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/patients_e2e"
    ),
    "MEASUREMENT_DATABASE_URL": os.environ.get(
        "E2E_MEASUREMENT_DATABASE_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/measurements_e2e"
    ),
}
T = TypeVar("T")
RABBITMQ = os.environ.get("E2E_RABBITMQ", "127.0.0.1:5672")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True)


@contextlib.contextmanager
def vhost() -> Iterator[str]:
    """A RabbitMQ virtual host of our own: queues and messages of other runs never leak in."""
    name = f"painkiller-test-{uuid.uuid4().hex[:8]}"
    rabbitmqctl("add_vhost", name)
    rabbitmqctl("set_permissions", "-p", name, "guest", ".*", ".*", ".*")
    try:
        yield name
    finally:
        rabbitmqctl("delete_vhost", name)


def amqp_url(vhost_name: str, address: str = RABBITMQ) -> str:
    return f"amqp://guest:guest@{address}/{vhost_name}"


def empty(databases: dict[str, str]) -> None:
    for url in databases.values():
        truncate_all(url)


@contextlib.contextmanager
def running_stack(
    databases: dict[str, str], amqp: dict[str, str], overrides: dict[str, dict[str, str]] | None = None
) -> Iterator[stack_module.Stack]:
    """Start the whole stack; `amqp` gives each service's broker URL (PATIENT_AMQP_URL, ...),
    `overrides` extra environment for single processes."""
    # Not under pytest's 0700 tmp dir: NGINX workers may run as another user and must read it.
    run_dir = Path(tempfile.mkdtemp(prefix="painkiller-test-"))
    run_dir.chmod(0o755)
    started = stack_module.Stack(
        run_dir=run_dir,
        nginx_port=free_port(),
        patient_port=free_port(),
        measurement_port=free_port(),
        env={**databases, **amqp},
        process_env_overrides=overrides or {},
    )
    failed = False
    try:
        stack_module.up(started, foreground_nginx=True)
        yield started
    except BaseException:
        failed = True
        raise
    finally:
        stack_module.stop(list(started.processes.values()))
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
