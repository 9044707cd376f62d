"""The measurement service's FastAPI application."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from measurement_service.api import ALIAS_PREFIX, PREFIX, measures_router, patient_router
from measurement_service.config import Settings, get_settings
from measurement_service.models import EVENT_TABLES
from measurement_service.patients import PatientDirectory
from painkiller_common import health, pg
from painkiller_common.app import create_service_app
from painkiller_common.db import make_engine, make_session_factory
from painkiller_common.health import Check


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.engine = make_engine(
            settings.database_url, pool_size=settings.db_sync_pool_size, max_overflow=settings.db_max_overflow
        )
        app.state.session_factory = make_session_factory(app.state.engine)
        # The hot routes (record, list) run on asyncpg; the rest on the SQLAlchemy engine above.
        app.state.pool = await pg.open_pool(settings.database_url, max_size=settings.db_pool_size)
        app.state.patient_directory = PatientDirectory(
            settings.patient_service_url, settings.patient_service_timeout_s, settings.patient_service_token_file
        )
        yield
        await app.state.patient_directory.close()
        await app.state.pool.close()
        app.state.engine.dispose()

    app = create_service_app(
        service="measurement",
        title="Painkiller measurement service",
        description=(
            "Vital-sign readings. Every `/api/v1/measures` route is also served under "
            "`/api/v1/measurements`. Errors are RFC 9457 `application/problem+json`."
        ),
        docs_prefix=PREFIX,
        lifespan=lifespan,
        readiness={
            "database": Check(health.database),
            "broker": health.broker(settings.amqp_url),
            "outbox": health.outbox_backlog(EVENT_TABLES.outbox),
        },
        health_prefixes=[PREFIX, ALIAS_PREFIX],
        settings=settings,
        tables=EVENT_TABLES,
    )
    app.include_router(patient_router)
    app.include_router(measures_router(PREFIX, in_schema=True))
    app.include_router(measures_router(ALIAS_PREFIX, in_schema=False))
    return app
