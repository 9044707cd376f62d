"""Idempotent creates: a retry with the same `Idempotency-Key` gets the first answer back.

Devices resend on flaky networks; a duplicate reading would skew a patient's trend. The key is
claimed inside the request's own transaction, so the stored answer commits with the row it
describes. A concurrent retry blocks on the claim until the first request commits, then replays.
"""

import hashlib
from collections.abc import Callable
from typing import Annotated

from fastapi import Header
from fastapi.responses import Response
from pydantic import BaseModel
from sqlalchemy import Table, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from painkiller_common.problems import Conflict

IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        max_length=200,
        pattern=r"^[\x21-\x7e]+$",
        description="Any unique token (a UUID is best); a retry with the same key and body stores nothing new.",
    ),
]

# What a create returns: the response body and the new resource's URL.
Created = tuple[BaseModel, str]


def create_once(
    *,
    session: Session,
    table: Table,
    key: str | None,
    scope: str,
    request: BaseModel,
    create: Callable[[], Created],
) -> Response:
    """Run `create` unless this key already did; either way answer 201 with the stored body."""
    if key is None:
        return _created(*_dump(create()))
    fingerprint = hashlib.sha256(request.model_dump_json().encode()).hexdigest()
    claimed = session.execute(
        insert(table)
        .values(scope=scope, key=key, fingerprint=fingerprint)
        .on_conflict_do_nothing()
        .returning(table.c.key)
    ).first()
    if claimed is None:
        return _replay(session, table, scope=scope, key=key, fingerprint=fingerprint)
    body, location = _dump(create())
    session.execute(
        update(table)
        .where(table.c.scope == scope, table.c.key == key)
        .values(status_code=201, body=body, location=location)
    )
    return _created(body, location)


def _replay(session: Session, table: Table, *, scope: str, key: str, fingerprint: str) -> Response:
    stored = session.execute(select(table).where(table.c.scope == scope, table.c.key == key)).one()
    if stored.fingerprint != fingerprint:
        raise Conflict("This Idempotency-Key was used with a different request body.")
    return _created(stored.body, stored.location, replayed=True)


def _dump(created: Created) -> tuple[str, str]:
    model, location = created
    return model.model_dump_json(), location


def _created(body: str, location: str, *, replayed: bool = False) -> Response:
    headers = {"Location": location}
    if replayed:
        headers["Idempotent-Replayed"] = "true"
    return Response(content=body, status_code=201, media_type="application/json", headers=headers)
