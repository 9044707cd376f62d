"""Fixtures of the cross-service suites (tests/e2e, tests/faults); the plumbing is in stacks.py."""

from collections.abc import Iterator

import httpx
import pytest
from harness import E2E_DATABASES, bearer, broker, empty, running_stack, stack_module


@pytest.fixture(scope="session")
def stack() -> Iterator[stack_module.Stack]:
    """The end-to-end stack, shared by the suites that need no faults."""
    with broker() as users, running_stack(E2E_DATABASES, users) as started:
        yield started


@pytest.fixture
def empty_databases() -> Iterator[None]:
    """Both services' databases are emptied after the test."""
    yield
    empty(E2E_DATABASES)


@pytest.fixture
def api(stack: stack_module.Stack, empty_databases: None) -> Iterator[httpx.Client]:
    """An HTTP client whose every request goes through NGINX, as a clinician with every scope."""
    with httpx.Client(base_url=stack.url, timeout=10, headers=bearer(stack)) as client:
        yield client
