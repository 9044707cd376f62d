"""The OpenAPI documents as the services really answer: problem+json errors, the headers they
send, the scopes they need, page examples."""

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from painkiller_common.http.pagination import CURSOR_EXAMPLE
from painkiller_common.http.problems import PROBLEM_JSON, ProblemDetails


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
