"""Starts the real stack for the end-to-end suite: both services and NGINX on free ports,
against their own databases, with the same code `make up` uses (scripts/stack.py)."""

import os
import shutil
import socket
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from painkiller_common.testing import truncate_all

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))

import stack as stack_module  # noqa: E402

DATABASES = {
    "PATIENT_DATABASE_URL": os.environ.get(
        "E2E_PATIENT_DATABASE_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/patients_e2e"
    ),
    "MEASUREMENT_DATABASE_URL": os.environ.get(
        "E2E_MEASUREMENT_DATABASE_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/measurements_e2e"
    ),
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def stack() -> Iterator[stack_module.Stack]:
    # Not under pytest's 0700 tmp dir: NGINX workers may run as another user and must read it.
    run_dir = Path(tempfile.mkdtemp(prefix="painkiller-e2e-"))
    run_dir.chmod(0o755)
    started = stack_module.Stack(
        run_dir=run_dir,
        nginx_port=free_port(),
        patient_port=free_port(),
        measurement_port=free_port(),
        env=DATABASES,
    )
    stack_module.up(started, foreground_nginx=True)
    yield started
    stack_module.stop(started.processes)
    shutil.rmtree(run_dir, ignore_errors=True)


@pytest.fixture
def empty_databases() -> Iterator[None]:
    """Both services' databases are emptied after the test."""
    yield
    for url in DATABASES.values():
        truncate_all(url)


@pytest.fixture
def api(stack: stack_module.Stack, empty_databases: None) -> Iterator[httpx.Client]:
    """An HTTP client whose every request goes through NGINX."""
    with httpx.Client(base_url=stack.url, timeout=10) as client:
        yield client
