"""The patient service's FastAPI application."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from painkiller_common import health, pg
from painkiller_common.app import create_service_app
from painkiller_common.db import make_engine, make_session_factory
from painkiller_common.health import Check
from patient_service.api import PREFIX, router
from patient_service.config import Settings, get_settings
from patient_service.models import EVENT_TABLES


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.engine = make_engine(
            settings.database_url, pool_size=settings.db_sync_pool_size, max_overflow=settings.db_max_overflow
        )
        app.state.session_factory = make_session_factory(app.state.engine)
        app.state.settings = settings
        # Reading a patient, the hot read, runs on asyncpg; the rest on the SQLAlchemy engine above.
        app.state.pool = await pg.open_pool(settings.database_url, max_size=settings.db_pool_size)
        yield
        await app.state.pool.close()
        app.state.engine.dispose()

    app = create_service_app(
        service="patient",
        title="Painkiller patient service",
        description="Patients of the ward. Errors are RFC 9457 `application/problem+json`.",
        docs_prefix=PREFIX,
        lifespan=lifespan,
        readiness={
            "database": Check(health.database),
            "broker": health.broker(settings.amqp_url),
            "outbox": health.outbox_backlog(EVENT_TABLES.outbox),
        },
        health_prefixes=[PREFIX],
        settings=settings,
        tables=EVENT_TABLES,
    )
    app.include_router(router)
    return app
