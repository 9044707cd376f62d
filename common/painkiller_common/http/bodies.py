"""Request and response bodies of the JSON API: the media types a route takes, and a model as JSON."""

from fastapi import Depends, Request, Response
from pydantic import BaseModel

from painkiller_common.http.problems import UnsupportedMediaType


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
