"""The one command line both services share: `python -m <service> api|migrate|relay|consumer`.

docker-compose, `make up` and the end-to-end tests all start the services through it, so the
containers and the native run use the same entry points.
"""

import argparse
import asyncio
import os
import sys
import tempfile
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import uvicorn

from painkiller_common.db import make_engine, make_session_factory, provision, upgrade
from painkiller_common.db.tables import EventTables
from painkiller_common.events.consumer import Consumer
from painkiller_common.events.relay import Relay
from painkiller_common.events.topology import QUEUES, QueueSpec, declare_with
from painkiller_common.observability import logs, metrics, tracing
from painkiller_common.service_spec import S, Service
from painkiller_common.settings import ServiceSettings


def run(service: Service[S], *, app_factory: str, argv: Sequence[str] | None = None) -> None:
    """`app_factory` is the service's `module:function` that uvicorn imports in each worker."""
    settings = service.load_settings()
    commands: dict[str, Callable[[], None]] = {
        "api": lambda: serve(settings, app_factory),
        "migrate": lambda: migrate(settings, service.migrations, service.runtime_role, QUEUES[service.name]),
        "relay": lambda: relay(settings, service.tables),
        "consumer": lambda: consume(service, settings),
        **{name: partial(command, settings) for name, command in service.extra_commands.items()},
    }
    parser = argparse.ArgumentParser(description=f"Run one part of the {service.name} service.")
    parser.add_argument("command", choices=sorted(commands))
    args = parser.parse_args(argv)
    logs.configure(service.name, args.command, settings.log_level)
    tracing.configure(service.name, args.command)
    commands[args.command]()


def migrate(settings: ServiceSettings, migrations_dir: Path, runtime_role: str, queues: Sequence[QueueSpec]) -> None:
    """Roles and database first when a superuser URL is given; then the newest schema, as the
    owner; then the shared exchanges and this service's queues on the broker, as its admin user,
    so no event published before its consumers first start is lost."""
    if settings.admin_database_url:
        provision(
            admin_url=settings.admin_database_url,
            owner_url=settings.migration_database_url,
            runtime_url=settings.database_url,
            runtime_role=runtime_role,
        )
    upgrade(migrations_dir, settings.migration_database_url)
    declare_with(settings.amqp_admin_url or settings.amqp_url, queues)


def relay(settings: ServiceSettings, tables: EventTables) -> None:
    engine = make_engine(settings.database_url, pool_size=2, max_overflow=0)
    heartbeat = metrics.Heartbeat()
    metrics.serve(settings.metrics_port, settings.host, heartbeat=heartbeat)
    Relay(engine=engine, tables=tables, amqp_url=settings.amqp_url, heartbeat=heartbeat).run_forever()


def consume(service: Service[S], settings: S) -> None:
    engine = make_engine(settings.database_url, pool_size=2, max_overflow=0)
    heartbeat = metrics.Heartbeat()
    metrics.serve(settings.metrics_port, settings.host, heartbeat=heartbeat)
    Consumer(
        session_factory=make_session_factory(engine, service.tables.outbox),
        tables=service.tables,
        queue=service.queue,
        batch=lambda session: service.batch(session, settings),
        amqp_url=settings.amqp_url,
        producer=settings.event_producer,
        heartbeat=heartbeat,
    ).run_forever()


def serve(settings: ServiceSettings, app_factory: str) -> None:
    if settings.workers > 1 and settings.metrics_port:
        # Several workers: each writes its metrics under this directory (read at its import of
        # prometheus-client), and this process serves them added up (metrics.py).
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="painkiller-metrics-")
        metrics.serve_workers(settings.metrics_port, settings.host)
    options: dict[str, Any] = {
        "factory": True,
        "host": settings.host,
        "port": settings.port,
        "workers": settings.workers,
        "log_level": settings.log_level.lower(),
        "log_config": None,  # uvicorn's lines go through the process's JSON logging (logs.py)
        "access_log": False,  # our own access log leaves out query strings, which can hold names
        "proxy_headers": True,
        "forwarded_allow_ips": settings.forwarded_allow_ips,
        # An event stream (a ward's board) never ends by itself: a stop closes what is still open
        # after this long, rather than waiting for its browser to go.
        "timeout_graceful_shutdown": 5,
    }
    if settings.workers > 1:  # uvicorn's own supervisor starts its own servers
        uvicorn.run(app_factory, **options)
        return
    server = _Server(uvicorn.Config(app_factory, **options))
    server.run()
    if not server.started:
        sys.exit(3)  # what uvicorn.run exits with when the app could not start


class _Server(uvicorn.Server):
    """uvicorn's loop wakes ten times a second, to refresh its Date header once a second and to see
    a stop asked for: most of what an idle API costs (doc/performance.md). Once a second does
    both; a stop is seen up to a second later."""

    async def main_loop(self) -> None:
        counter = 0  # in uvicorn's tenths of a second: on_tick refreshes the header at multiples of 10
        should_exit = await self.on_tick(counter)
        while not should_exit:
            counter = (counter + 10) % 864000
            await asyncio.sleep(1)
            should_exit = await self.on_tick(counter)
