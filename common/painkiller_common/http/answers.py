"""The JSON API's side of idempotent writes (db/idempotency.py): the `Idempotency-Key` header a write
route takes, and a write's `Answer` as the response it gives."""

from typing import Annotated

from fastapi import Header
from fastapi.responses import Response

from painkiller_common.db.idempotency import Answer

REPLAYED = "Idempotent-Replayed"

IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        max_length=200,
        pattern=r"^[\x21-\x7e]+$",
        description=(
            "Any unique token (a UUID is best); a retry with the same key and body stores nothing new and gets"
            " the first answer, or 404 once what it stored (or its patient) has been deleted."
        ),
    ),
]


def answer_headers(answer: Answer, location: str | None) -> dict[str, str]:
    """`Location` when there is one; `Idempotent-Replayed` marks an answer given again for a retried key."""
    headers = {"Location": location} if location else {}
    if answer.replayed:
        headers[REPLAYED] = "true"
    return headers


def respond(answer: Answer) -> Response:
    """A write's JSON answer as the response, byte for byte as first given."""
    headers = answer_headers(answer, answer.location)
    return Response(content=answer.body, status_code=answer.status_code, media_type="application/json", headers=headers)
