"""Fixtures of the cross-service suites (tests/e2e, tests/faults); the plumbing is in stacks.py."""

from collections.abc import Iterator

import httpx
import pytest
from harness import E2E_DATABASES, amqp_url, empty, running_stack, stack_module, vhost


@pytest.fixture(scope="session")
def stack() -> Iterator[stack_module.Stack]:
    """The end-to-end stack, shared by the suites that need no faults."""
    with vhost() as name:
        url = amqp_url(name)
        with running_stack(E2E_DATABASES, {"PATIENT_AMQP_URL": url, "MEASUREMENT_AMQP_URL": url}) as started:
            yield started


@pytest.fixture
def empty_databases() -> Iterator[None]:
    """Both services' databases are emptied after the test."""
    yield
    empty(E2E_DATABASES)


@pytest.fixture
def api(stack: stack_module.Stack, empty_databases: None) -> Iterator[httpx.Client]:
    """An HTTP client whose every request goes through NGINX."""
    with httpx.Client(base_url=stack.url, timeout=10) as client:
        yield client
