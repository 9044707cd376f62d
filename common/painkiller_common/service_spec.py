"""What makes each service itself. Everything built from it is shared: the app (app.py), the
command line (cli.py) and the test fixtures (painkiller_testing/fixtures.py); a service supplies
one `Service`.
"""

from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Generic, TypeVar

from fastapi import APIRouter, FastAPI

from painkiller_common.db.outbox import UnitOfWork
from painkiller_common.db.tables import EventTables
from painkiller_common.events.consumer import Batch
from painkiller_common.events.topology import QueueSpec
from painkiller_common.settings import ServiceSettings

S = TypeVar("S", bound=ServiceSettings)


@dataclass(frozen=True)
class Service(Generic[S]):
    name: str  # "patient": operation ids (`patient_create`), the package `painkiller-patient-service`
    title: str
    description: str
    docs_prefix: str  # where its Swagger UI and OpenAPI document are served
    health_prefixes: Sequence[str]
    settings: type[S]
    routers: Callable[[], Sequence[APIRouter]]
    tables: EventTables
    queue: QueueSpec  # the queue its consumer reads
    runtime_role: str
    migrations: Path
    batch: Callable[[UnitOfWork, S], Batch]  # how its consumer applies a batch of events
    # What else its app holds while it runs, set up and torn down with it (a client, a cache).
    state: Callable[[FastAPI, S], AbstractAsyncContextManager[None]] | None = None
    # Processes of its own beside api, relay and consumer (`python -m <service> <name>`); the
    # queues they read are in topology.QUEUES with the consumer's.
    extra_commands: Mapping[str, Callable[[S], None]] = field(default_factory=dict)
    # Prefixes served as another (alias -> prefix), every route of it included, out of the document.
    aliases: Mapping[str, str] = field(default_factory=dict)

    def load_settings(self) -> S:
        """The settings from the environment (the service's own prefix), read once."""
        return _load(self.settings)


@cache
def _load(settings: type[S]) -> S:
    return settings()
