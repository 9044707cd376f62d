"""The patient service's FastAPI application (`patient_service.main:create_app` for uvicorn)."""

from fastapi import FastAPI

from painkiller_common.http import app
from patient_service.config import Settings
from patient_service.spec import SPEC


def create_app(settings: Settings | None = None) -> FastAPI:
    return app.create_app(SPEC, settings)
