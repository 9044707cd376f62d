"""What every Painkiller FastAPI app has: offline Swagger UI, problem errors, health, logging."""

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager, nullcontext
from importlib import metadata
from typing import Any

from fastapi import Depends, FastAPI, Request, Response
from fastapi.openapi.utils import get_openapi
from fastapi_offline import FastAPIOffline
from pydantic import BaseModel
from starlette.types import ASGIApp, Lifespan, Message, Receive, Scope, Send

from painkiller_common import fhir
from painkiller_common.db import make_engine, make_session_factory, pg
from painkiller_common.db.pg import install_pg_handlers
from painkiller_common.http import health
from painkiller_common.http.health import Check, health_router
from painkiller_common.http.pagination import CURSOR_EXAMPLE
from painkiller_common.http.problems import (
    PROBLEM_JSON,
    ProblemDetails,
    UnsupportedMediaType,
    install_problem_handlers,
    problem_responses,
)
from painkiller_common.observability import logs, metrics, tracing
from painkiller_common.security.access import install_refusal_audit
from painkiller_common.security.auth import TokenVerifier
from painkiller_common.service_spec import S, Service

logger = logging.getLogger("painkiller.access")


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
    )
    install_problem_handlers(app)
    install_pg_handlers(app)
    install_refusal_audit(app)
    fhir.install_error_handlers(app)
    # Made here, not in the lifespan: an API without a way to check tokens must not start at all.
    app.state.token_verifier = TokenVerifier(settings.auth)
    app.state.audit_table = service.tables.audit_events
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
    """The app's connections: SQLAlchemy for most routes, asyncpg for the hot ones
    (doc/performance.md), and whatever else the service holds."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.engine = make_engine(
            settings.database_url, pool_size=settings.db_sync_pool_size, max_overflow=settings.db_max_overflow
        )
        tracing.instrument_engine(app.state.engine)
        app.state.session_factory = make_session_factory(app.state.engine, service.tables.outbox)
        app.state.pool = await pg.open_pool(settings.database_url, max_size=settings.db_pool_size)
        measuring = _measure_pools(app)
        metrics.serve(settings.metrics_port, settings.host)
        try:
            async with service.state(app, settings) if service.state else nullcontext():
                yield
        finally:
            if measuring is not None:
                measuring.cancel()
            await app.state.pool.close()
            app.state.engine.dispose()

    return lifespan


def _measure_pools(app: FastAPI) -> asyncio.Task[None] | None:
    """Connections in use, asyncpg's pool and SQLAlchemy's: read when Prometheus scrapes, or,
    with several workers (whose scrape another process answers), written once a second."""
    pool, engine = app.state.pool, app.state.engine
    in_use = {"asyncpg": lambda: pool.get_size() - pool.get_idle_size(), "sqlalchemy": engine.pool.checkedout}
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


def json_response(model: BaseModel, status_code: int = 200) -> Response:
    """`model` serialised once, in Rust: a route that returns this skips FastAPI validating its
    own output again (the route's response_model still documents it)."""
    return Response(model.model_dump_json(), status_code=status_code, media_type="application/json")


def _media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


async def require_json(request: Request) -> None:
    """Dependency for routes with a JSON body: anything else is a 415, not a confusing 422."""
    media_type = _media_type(request)
    if media_type != "application/json" and not media_type.endswith("+json"):
        raise UnsupportedMediaType("Send the body as application/json.")


# For routes with a JSON body: `dependencies=JsonBody`.
JsonBody = [Depends(require_json)]


async def require_csv(request: Request) -> None:
    if _media_type(request) != "text/csv":
        raise UnsupportedMediaType("Send the file as text/csv.")


class AccessLog:
    """One log line per request (method, path, status, time, request id) and its duration in
    `http_server_request_duration_seconds`.

    Plain ASGI rather than BaseHTTPMiddleware, which costs a task and a stream per request. The
    path only, never the query string: filters such as `name` are patient data.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        headers = dict(scope["headers"])
        sent_id, traceparent = (headers.get(name, b"").decode("latin-1") or None for name in HEADERS_IN)
        request_id = logs.request_id_of(sent_id)  # what the audit row records too (Access)
        with logs.work(request_id=request_id, traceparent=traceparent):
            try:
                await self.app(scope, receive, send_status)
            finally:
                elapsed = time.perf_counter() - started
                route = scope.get("route")  # set by the router: its template, never the raw path
                template = getattr(route, "path_format", None) or "unmatched"
                metrics.REQUEST_DURATION.labels(scope["method"], template, str(status)).observe(elapsed)
                logger.info(
                    "%s %s %s",
                    scope["method"],
                    scope["path"],
                    status,
                    extra={"method": scope["method"], "path": scope["path"], "status": status,
                           "duration_ms": round(elapsed * 1000, 1)},
                )  # fmt: skip


# The ids a request brings (NGINX sets X-Request-ID when the client did not), for logs.work.
HEADERS_IN = (b"x-request-id", b"traceparent")

# Patient data must not be cached (by a browser or a proxy), sniffed into another type, framed by
# another page, or leak its URL in a Referer. NGINX says the same, but in Kubernetes the Ingress
# reaches the services directly: the apps say it themselves, on every answer.
PROTECTIVE_HEADERS = (
    (b"cache-control", b"no-store"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"content-security-policy", b"frame-ancestors 'none'"),
)


class ProtectiveHeaders:
    """Adds PROTECTIVE_HEADERS to every response that does not set them itself."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_protected(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                headers += [header for header in PROTECTIVE_HEADERS if header[0] not in present]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_protected)


class PrefixAliases:
    """Serves each alias prefix as the prefix it stands for: the path is rewritten before routing,
    so each route exists once, and the alias stays out of the OpenAPI document."""

    def __init__(self, app: ASGIApp, aliases: Mapping[str, str]) -> None:
        self.app = app
        self.aliases = aliases

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            scope = self._rewritten(scope)
        await self.app(scope, receive, send)

    def _rewritten(self, scope: Scope) -> Scope:
        path: str = scope["path"]
        for alias, prefix in self.aliases.items():
            if path == alias or path.startswith(f"{alias}/"):
                raw: bytes = scope.get("raw_path") or path.encode()
                return {**scope, "path": prefix + path[len(alias) :], "raw_path": prefix.encode() + raw[len(alias) :]}
        return scope


def problem_openapi(app: FastAPI) -> dict[str, Any]:
    """OpenAPI document whose error responses say what the service really sends: problem+json."""
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
    schemas = schema.setdefault("components", {}).setdefault("schemas", {})
    for name, definition in (
        ProblemDetails.model_json_schema(ref_template="#/components/schemas/{model}").get("$defs", {}).items()
    ):
        schemas.setdefault(name, definition)
    schemas.setdefault("ProblemDetails", ProblemDetails.model_json_schema(ref_template="#/components/schemas/{model}"))
    schemas["ProblemDetails"].pop("$defs", None)
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)
    _page_examples(schemas)
    problem = {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/ProblemDetails"}}}
    for operations in schema.get("paths", {}).values():
        for operation in operations.values():
            _document_security(operation)
            _document_headers(operation)
            _document_body_errors(operation)
            for status, response in operation.get("responses", {}).items():
                if str(status)[0] in "45":
                    response["content"] = problem
    app.openapi_schema = schema
    return schema


def _page_examples(schemas: dict[str, Any]) -> None:
    """A page's example is its item's, with a cursor: `Page[T]` is generic, so each of its
    schemas (`Page_PatientOut_`) takes the example of its own T."""
    for name, schema in schemas.items():
        item = schemas.get(name.removeprefix("Page_").removesuffix("_"), {})
        if name.startswith("Page_") and item.get("examples"):
            schema["examples"] = [{"items": item["examples"][:1], "next_cursor": CURSOR_EXAMPLE}]


HEADERS = {
    "Location": {"description": "The new resource's URL.", "schema": {"type": "string"}},
    "Idempotent-Replayed": {
        "description": "`true` when this is the stored answer to an earlier request with the same Idempotency-Key.",
        "schema": {"type": "string", "enum": ["true"]},
    },
    "Retry-After": {"description": "Seconds to wait before retrying.", "schema": {"type": "integer"}},
}


def _document_headers(operation: dict[str, Any]) -> None:
    """The response headers the service sends: Location on a create, Idempotent-Replayed on a
    write that takes an Idempotency-Key, Retry-After on a 503."""
    responses = operation.get("responses", {})
    keyed = any(p.get("in") == "header" and p.get("name") == "Idempotency-Key" for p in operation.get("parameters", []))
    for status, response in responses.items():
        names = ["Location"] if status == "201" else []
        names += ["Idempotent-Replayed"] if keyed and str(status).startswith("2") else []
        names += ["Retry-After"] if status == "503" else []
        if names:
            response.setdefault("headers", {}).update({name: HEADERS[name] for name in names})
    if keyed:
        responses.setdefault("409", {"description": "The Idempotency-Key was used with a different request"})


def _document_body_errors(operation: dict[str, Any]) -> None:
    """A JSON body that does not parse is a 400 (FastAPI's own rule): say so where a body is taken."""
    if "application/json" in operation.get("requestBody", {}).get("content", {}):
        operation["responses"].setdefault("400", {"description": "The body is not valid JSON"})


def _document_security(operation: dict[str, Any]) -> None:
    """A secured operation says which scopes it needs and that it can answer 401 and 403."""
    scopes = [scope for requirement in operation.get("security", []) for scope in requirement.get("bearer", [])]
    if not scopes:
        return
    needs = "Needs a bearer token with one of the scopes " + ", ".join(f"`{s}`" for s in scopes) + "."
    operation["description"] = f"{operation.get('description', '')}\n\n{needs}".strip()
    responses = operation.setdefault("responses", {})
    responses.setdefault("401", {"description": "No token, or one that is not valid"})
    responses.setdefault("403", {"description": "The token lacks the scope"})
