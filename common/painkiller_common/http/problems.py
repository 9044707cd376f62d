"""RFC 9457 problem details: the one error format every Painkiller response uses.

Use cases raise domain errors (errors.py) and the API layer its own `Problem`s (401, 403, 415,
503 from readiness); the handlers installed by `install_problem_handlers` render both, FastAPI's
own errors and anything unexpected as `application/problem+json`. An adapter with an error format
of its own (FHIR's OperationOutcome, fhir.py) installs it with `install_error_format`: the same
handlers then answer in that format on its paths.
"""

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import psycopg
from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict
from sqlalchemy import exc as sqlalchemy_errors
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from painkiller_common.errors import Conflict, DomainError, Invalid, NotFound, Unavailable

logger = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"
VALIDATION_EXAMPLE: dict[str, Any] = {
    "type": "https://painkiller.example/problems/validation-failed",
    "title": "Validation failed",
    "status": 422,
    "detail": "Invalid request: temperature_c",
    "instance": "/api/v1/measures",
    "errors": [
        {
            "loc": ["body", "temperature_c"],
            "field": "temperature_c",
            "message": "Input should be less than or equal to 50",
            "type": "less_than_equal",
        }
    ],
}
METHODS = ("DELETE", "GET", "HEAD", "PATCH", "POST", "PUT")
TYPE_BASE = "https://painkiller.example/problems/"


class FieldError(BaseModel):
    """One field at fault in a request that failed validation."""

    model_config = ConfigDict(json_schema_extra={"examples": [VALIDATION_EXAMPLE["errors"][0]]})

    loc: list[str | int]
    field: str
    message: str
    type: str


class ProblemDetails(BaseModel):
    """RFC 9457 body; `errors` is present on 422 only."""

    model_config = ConfigDict(json_schema_extra={"examples": [VALIDATION_EXAMPLE]})

    type: str
    title: str
    status: int
    detail: str
    instance: str | None = None
    errors: list[FieldError] | None = None


class Problem(Exception):
    """A failure with an HTTP status that the client can act on."""

    status = 400
    title = "Bad request"
    slug = "bad-request"

    def __init__(self, detail: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.headers = headers or {}


class UnsupportedMediaType(Problem):
    status, title, slug = 415, "Unsupported media type", "unsupported-media-type"


class ServiceUnavailable(Problem):
    status, title, slug = 503, "Service unavailable", "service-unavailable"

    def __init__(self, detail: str, *, retry_after_s: int = 5) -> None:
        super().__init__(detail, headers={"Retry-After": str(retry_after_s)})


_TITLES = {
    400: "Bad request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    406: "Not acceptable",
    409: "Conflict",
    410: "Gone",
    412: "Precondition failed",
    413: "Content too large",
    415: "Unsupported media type",
    422: "Validation failed",
    429: "Too many requests",
    500: "Internal server error",
    503: "Service unavailable",
}


def field_name(loc: list[str | int]) -> str:
    """`["body", "readings", 3, "spo2_percent"]` -> `readings.3.spo2_percent`."""
    return ".".join(str(part) for part in (loc[1:] if len(loc) > 1 else loc))


@dataclass(frozen=True)
class ErrorFormat:
    """An adapter's own way of answering errors, on the requests it `serves`: `render(status,
    detail, field errors, headers)`; `statuses` gives its own domain errors' statuses."""

    serves: Callable[[Request], bool]
    render: Callable[[int, str, list[FieldError], dict[str, str] | None], Response]
    statuses: Mapping[type[DomainError], int]


def install_error_format(app: FastAPI, error_format: ErrorFormat) -> None:
    app.state.error_formats = [*getattr(app.state, "error_formats", []), error_format]


def _formats(request: Request) -> list[ErrorFormat]:
    return getattr(request.app.state, "error_formats", [])


def problem_response(
    request: Request,
    *,
    status: int,
    detail: str,
    slug: str | None = None,
    title: str | None = None,
    errors: list[FieldError] | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    title = title or _TITLES.get(status, "Error")
    for error_format in _formats(request):
        if error_format.serves(request):
            return error_format.render(status, detail, errors or [], headers)
    body = ProblemDetails(
        type=TYPE_BASE + (slug or title.lower().replace(" ", "-")),
        title=title,
        status=status,
        detail=detail,
        instance=request.url.path,
        errors=errors,
    )
    return JSONResponse(
        body.model_dump(exclude_none=True),
        status_code=status,
        media_type=PROBLEM_JSON,
        headers=headers,
    )


def _safe_message(message: str) -> str:
    # pydantic messages can quote the rejected value; keep them printable and short.
    return message.replace("\x00", "\\u0000")[:300]


def field_errors(errors: list[Any]) -> list[FieldError]:
    """pydantic's errors as FieldErrors, without the rejected input: it may be NaN (not JSON) or
    patient data."""
    out = []
    for err in errors:
        loc = [part if isinstance(part, (str, int)) else str(part) for part in err.get("loc", ())]
        if field := (err.get("ctx") or {}).get("field"):  # a rule across fields names its field
            loc.append(field)
        message = _safe_message(str(err.get("msg", "invalid value")))
        if err.get("type") == "json_invalid":  # pydantic puts the character offset in loc
            message = f"malformed JSON at character {loc[-1]}: {err.get('ctx', {}).get('error', '')}"
            loc = ["body"]
        out.append(
            FieldError(loc=loc, field=field_name(loc), message=message, type=str(err.get("type", "value_error")))
        )
    return out


# Each domain error's status; an Invalid's paths are within the body.
DOMAIN_STATUS: dict[type[DomainError], int] = {NotFound: 404, Conflict: 409, Invalid: 422, Unavailable: 503}


def status_of(request: Request, exc: Problem | DomainError) -> int:
    """A Problem's own status; a domain error's from the nearest of its classes that has one (an
    installed error format may give its own errors' statuses)."""
    if isinstance(exc, Problem):
        return exc.status
    statuses = dict(DOMAIN_STATUS)
    for error_format in _formats(request):
        statuses |= error_format.statuses
    return next(statuses[kind] for kind in type(exc).__mro__ if kind in statuses)


async def on_domain_error(request: Request, exc: DomainError) -> Response:
    status, detail, errors = status_of(request, exc), exc.detail, None
    if isinstance(exc, Invalid):
        locs = [(["body", *path], message) for path, message in exc.errors]
        errors = [FieldError(loc=loc, field=field_name(loc), message=m, type="value_error") for loc, m in locs]
        detail = "Invalid request: " + ", ".join(dict.fromkeys(e.field for e in errors))
    headers = {"Retry-After": "5"} if isinstance(exc, Unavailable) else None
    return problem_response(request, status=status, detail=detail, errors=errors, headers=headers)


async def on_problem(request: Request, exc: Problem) -> Response:
    return problem_response(
        request,
        status=exc.status,
        detail=exc.detail,
        slug=exc.slug,
        title=exc.title,
        errors=getattr(exc, "errors", None),
        headers=exc.headers,
    )


async def _on_validation(request: Request, exc: RequestValidationError) -> Response:
    errors = field_errors(list(exc.errors()))
    fields = ", ".join(dict.fromkeys(e.field for e in errors))
    return problem_response(
        request, status=422, detail=f"Invalid request: {fields}", slug="validation-failed", errors=errors
    )


async def _on_http(request: Request, exc: StarletteHTTPException) -> Response:
    detail = exc.detail if isinstance(exc.detail, str) else _TITLES.get(exc.status_code, "Error")
    headers = getattr(exc, "headers", None)
    if exc.status_code == 404 and detail == "Not Found":
        detail = f"No route matches {request.method} {request.url.path}"
    if exc.status_code == 405:
        allowed = allowed_methods(request)
        # Not naming the method: NGINX asks with OPTIONS on a TRACE's behalf (nginx/templates).
        detail, headers = f"{request.url.path} answers only {allowed}.", {"Allow": allowed}
    return problem_response(request, status=exc.status_code, detail=detail, headers=headers)


def allowed_methods(request: Request) -> str:
    """Every method some route serves at this path: Starlette's own 405 names only the first
    route that matched the path (POST, where GET and POST are two routes)."""
    routes = request.app.router.routes
    allowed = [
        method
        for method in METHODS
        if any(route.matches({**request.scope, "method": method})[0] == Match.FULL for route in routes)
    ]
    return ", ".join(allowed)


# The database's errors, as SQLAlchemy wraps them (most routes) and as psycopg raises them (the hot
# routes' async pool, db/pg.py): one driver, so one list. Gone for now (down, restarting, a pool's
# wait timed out): 503, the client may retry. A value PostgreSQL refused: 400.
DATABASE_DOWN = (sqlalchemy_errors.OperationalError, psycopg.OperationalError, psycopg.InterfaceError)
UNSTORABLE = (sqlalchemy_errors.DataError, psycopg.DataError, psycopg.IntegrityError)


def _driver_error(exc: Exception) -> str:
    """psycopg's own error class: SQLAlchemy wraps it in `orig`; the hot routes' come bare."""
    return type(getattr(exc, "orig", None) or exc).__name__


async def on_database_down(request: Request, exc: Exception) -> Response:
    # PostgreSQL unreachable or restarting: the client may retry, so say so instead of a 500.
    logger.warning("database unavailable on %s %s: %s", request.method, request.url.path, _driver_error(exc))
    return problem_response(
        request,
        status=503,
        detail="The database is not reachable; nothing was stored. Retry shortly.",
        headers={"Retry-After": "5"},
    )


async def on_unstorable_value(request: Request, exc: Exception) -> Response:
    # A value validation let through but PostgreSQL refused: a gap in validation to close,
    # yet still the client's input and still nothing stored, so a 400 rather than a 500.
    logger.warning("database refused a value on %s %s: %s", request.method, request.url.path, _driver_error(exc))
    return problem_response(request, status=400, detail="A value in this request cannot be stored; nothing was stored.")


async def _on_unexpected(request: Request, exc: Exception) -> Response:
    # Never leak a stack trace; the log has it, keyed by the request id NGINX sends.
    logger.exception(
        "unhandled error on %s %s request_id=%s",
        request.method,
        request.url.path,
        request.headers.get("x-request-id", "-"),
    )
    return problem_response(request, status=500, detail="The server failed to handle this request.")


def install_problem_handlers(app: FastAPI) -> None:
    # Starlette types a handler as taking any Exception; each of ours takes the class it is
    # registered for, which is all it is ever called with (the ignores below say so).
    app.add_exception_handler(Problem, on_problem)  # type: ignore[arg-type]
    app.add_exception_handler(DomainError, on_domain_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _on_validation)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, _on_http)  # type: ignore[arg-type]
    for gone in DATABASE_DOWN:
        app.add_exception_handler(gone, on_database_down)
    for refused in UNSTORABLE:
        app.add_exception_handler(refused, on_unstorable_value)
    app.add_exception_handler(Exception, _on_unexpected)


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses=` entries for the problem statuses a route can answer."""
    return {status: {"model": ProblemDetails, "description": _TITLES.get(status, "Error")} for status in statuses}
