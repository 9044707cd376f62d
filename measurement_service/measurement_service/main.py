"""The measurement service's FastAPI application (`measurement_service.main:create_app` for uvicorn)."""

from fastapi import FastAPI

from measurement_service.config import Settings
from measurement_service.spec import SPEC
from painkiller_common.http import app


def create_app(settings: Settings | None = None) -> FastAPI:
    return app.create_app(SPEC, settings)
