"""What every Painkiller FastAPI app has: offline Swagger UI, problem errors, health, logging."""

import asyncio
import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, nullcontext
from importlib import metadata

from fastapi import FastAPI
from fastapi_offline import FastAPIOffline
from starlette.types import Lifespan

from painkiller_common import fhir
from painkiller_common.db import make_engine, make_session_factory, pg
from painkiller_common.http import health
from painkiller_common.http.health import Check, health_router
from painkiller_common.http.middleware import AccessLog, PrefixAliases, ProtectiveHeaders
from painkiller_common.http.openapi import problem_openapi
from painkiller_common.http.problems import (
    install_problem_handlers,
    problem_responses,
)
from painkiller_common.observability import logs, metrics, tracing
from painkiller_common.security.access import install_refusal_audit
from painkiller_common.security.auth import TokenVerifier
from painkiller_common.service_spec import S, Service


def create_app(service: Service[S], settings: S | None = None) -> FastAPI:
    """The service's FastAPI app. Its docs, OpenAPI document and static assets live under the
    service's docs prefix; Swagger UI's assets come from the fastapi-offline package: hospital
    networks are often closed to the internet, so the docs must not depend on a CDN."""
    settings = settings or service.load_settings()
    # In a worker uvicorn spawned (several workers), nothing has set logging or tracing up yet.
    if not logging.getLogger().handlers:
        logs.configure(service.name, "api", settings.log_level)
        tracing.configure(service.name, "api")
    app = FastAPIOffline(
        title=service.title,
        description=service.description,
        version=metadata.version(f"painkiller-{service.name}-service"),  # one version: the package's
        docs_url=f"{service.docs_prefix}/docs",
        redoc_url=None,
        openapi_url=f"{service.docs_prefix}/openapi.json",
        static_url=f"{service.docs_prefix}/docs/static",
        lifespan=_lifespan(service, settings),
        # Any route can meet a database that is down (503) or a bug (500); both are problem+json.
        responses=problem_responses(500, 503),
        # `patient_create`, `measurement_list`: names a generated client can use as method names.
        generate_unique_id_function=lambda route: f"{service.name}_{route.name}",
        # Traces are tracing.py's (FastAPIInstrumentor, when configured); FastAPI's own telemetry
        # would otherwise look up OpenTelemetry's global providers on every request.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    install_problem_handlers(app)
    install_refusal_audit(app)
    fhir.install_error_handlers(app)
    # Made here, not in the lifespan: an API without a way to check tokens must not start at all.
    app.state.token_verifier = TokenVerifier(settings.auth)
    app.state.refused_table = service.tables.refused_requests
    app.state.settings = settings
    readiness = {
        "database": Check(health.database),
        "broker": health.broker_state(service.tables.broker_status),
        "outbox": health.outbox_backlog(service.tables.outbox),
    }
    for prefix in service.health_prefixes:
        app.include_router(health_router(readiness, prefix), include_in_schema=prefix == service.docs_prefix)
    for router in service.routers():
        app.include_router(router)
    if service.aliases:
        app.add_middleware(PrefixAliases, aliases=service.aliases)
    app.add_middleware(ProtectiveHeaders)
    app.add_middleware(AccessLog)
    # FastAPI's documented way to extend the document; mypy objects to assigning a method.
    app.openapi = lambda: problem_openapi(app)  # type: ignore[method-assign]
    tracing.instrument_app(app)
    return app


def _lifespan(service: Service[S], settings: S) -> Lifespan[FastAPI]:
    """The app's connections, all on psycopg 3: SQLAlchemy's engine for most routes, an async pool
    for the hot ones (db/pg.py, doc/performance.md), and whatever else the service holds."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.engine = make_engine(
            settings.database_url, pool_size=settings.db_sync_pool_size, max_overflow=settings.db_max_overflow
        )
        tracing.instrument_engine(app.state.engine)
        app.state.session_factory = make_session_factory(app.state.engine, service.tables.outbox)
        app.state.pool = await pg.open_pool(
            settings.database_url, max_size=settings.db_pool_size, timeout_s=settings.db_pool_timeout_s
        )
        measuring = _measure_pools(app)
        metrics.serve(settings.metrics_port, settings.host)
        # The app, its routes and models live as long as the process: out of the garbage
        # collector's sight (after a collection, so that no garbage is kept for good), its
        # collections scan only what requests allocate. Given back at shutdown, for a process
        # that starts many apps (the tests).
        gc.collect()
        gc.freeze()
        try:
            async with service.state(app, settings) if service.state else nullcontext():
                yield
        finally:
            gc.unfreeze()
            if measuring is not None:
                measuring.cancel()
            await app.state.pool.close()
            app.state.engine.dispose()

    return lifespan


def _measure_pools(app: FastAPI) -> asyncio.Task[None] | None:
    """Connections in use, the hot routes' async pool and SQLAlchemy's: read when Prometheus scrapes, or,
    with several workers (whose scrape another process answers), written once a second."""
    pool, engine = app.state.pool, app.state.engine
    in_use = {"async": lambda: _in_use(pool), "sqlalchemy": engine.pool.checkedout}
    if not metrics.MULTIPROCESS:
        for name, read in in_use.items():
            metrics.DB_POOL_IN_USE.labels(name).set_function(read)
        return None

    async def write_every_second() -> None:
        while True:
            for name, read in in_use.items():
                metrics.DB_POOL_IN_USE.labels(name).set(read())
            await asyncio.sleep(1)

    return asyncio.create_task(write_every_second())


def _in_use(pool: pg.Pool) -> int:
    stats = pool.get_stats()
    return stats["pool_size"] - stats["pool_available"]
