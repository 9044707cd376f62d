"""Liveness and readiness routes, and the checks readiness runs."""

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from pydantic import BaseModel, ConfigDict
from sqlalchemy import Table, func, select, text

from painkiller_common.db.outbox import backlog
from painkiller_common.events.broker import BROKER_REPORT_STALE_S
from painkiller_common.http.problems import ServiceUnavailable, problem_responses

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Check:
    """`run(app)` returns what to report, or raises; only critical failures make a 503."""

    run: Callable[[FastAPI], Any]
    critical: bool = True


class Liveness(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"status": "ok"}]})

    status: str


class Readiness(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "status": "ready",
                    "checks": {"database": "ok", "broker": "ok", "outbox": {"pending": 0, "oldest_pending_s": 0.0}},
                },
            ]
        }
    )

    status: str
    checks: dict[str, Any]


def health_router(readiness: dict[str, Check], prefix: str) -> APIRouter:
    # The prefix is the router's own, not include_router's: metrics label a request with its
    # route's template, which holds only the router's prefix.
    router = APIRouter(prefix=f"{prefix}/health", tags=["health"])

    @router.get("/live", name="health_live", response_model=Liveness)
    def live() -> Liveness:
        """The process is up and serving requests."""
        return Liveness(status="ok")

    @router.get("/ready", name="health_ready", response_model=Readiness, responses=problem_responses(503))
    def ready(request: Request) -> Readiness:
        """Ready when the database answers; the broker and the outbox backlog are reported too.

        A broker outage does not make the API unready: writes go to the outbox and keep working.
        """
        checks = {}
        for name, check in readiness.items():
            try:
                checks[name] = check.run(request.app)
            except Exception as exc:  # any failure: report it, and fail readiness if critical
                logger.warning("readiness check %s failed: %s", name, type(exc).__name__)
                if check.critical:
                    raise ServiceUnavailable(f"{name} is not reachable", retry_after_s=5) from None
                checks[name] = "unreachable"
        return Readiness(status="ready", checks=checks)

    return router


def database(app: FastAPI) -> str:
    with app.state.engine.connect() as conn:
        conn.execute(text("SELECT 1"))
    return "ok"


def broker_state(status: Table) -> Check:
    """The broker as this service's relay last reported it (relay.py): `ok`, `unreachable`, or
    `unknown` when no relay has reported lately. The API opens no broker connection of its own."""

    def run(app: FastAPI) -> str:
        age = func.extract("epoch", func.now() - status.c.seen_at)
        with app.state.engine.connect() as conn:
            row = conn.execute(select(status.c.connected, age)).first()
        if row is None or row[1] > BROKER_REPORT_STALE_S:
            return "unknown"
        return "ok" if row[0] else "unreachable"

    return Check(run, critical=False)


def outbox_backlog(outbox: Table) -> Check:
    """How many events wait to be published, and for how long the oldest has waited."""

    def run(app: FastAPI) -> dict[str, Any]:
        with app.state.engine.connect() as conn:
            pending, oldest = backlog(conn, outbox)
        return {"pending": pending, "oldest_pending_s": round(oldest, 3)}

    return Check(run, critical=False)
