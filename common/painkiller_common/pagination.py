"""Keyset pagination: an opaque cursor and a page envelope.

A cursor is the sort key of the last row a client saw, so a page costs the same on the first
and the millionth row (no OFFSET, no COUNT).
"""

import base64
import binascii
import json
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Annotated, Generic, TypeVar
from uuid import UUID

from pydantic import BaseModel, Field

from painkiller_common.fields import to_utc
from painkiller_common.problems import InvalidInput

DEFAULT_LIMIT = 50
MAX_LIMIT = 200

T = TypeVar("T")
R = TypeVar("R")

Limit = Annotated[int, Field(ge=1, description=f"Page size; values above {MAX_LIMIT} are clamped.")]
Cursor = Annotated[str, Field(max_length=200, pattern=r"^[A-Za-z0-9_\-=]*$", description="Opaque; from next_cursor.")]


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last page.")


def clamp_limit(limit: int | None) -> int:
    return min(limit or DEFAULT_LIMIT, MAX_LIMIT)


SortKey = datetime | int


def encode_cursor(key: SortKey, row_id: UUID) -> str:
    value = key.isoformat() if isinstance(key, datetime) else key
    raw = json.dumps([value, str(row_id)]).encode()
    return base64.urlsafe_b64encode(raw).decode()


def decode_cursor(cursor: str, *, loc: list[str | int]) -> tuple[datetime, UUID]:
    """The (timestamp, id) a cursor holds; a 422 naming `loc` if it was not one of ours."""
    key, row_id = _decode(cursor, loc)
    try:
        parsed = datetime.fromisoformat(str(key)) if isinstance(key, str) else None
        if parsed is None:
            raise TypeError("not a timestamp")
        if parsed.tzinfo is None:
            raise ValueError("naive timestamp")
        return to_utc(parsed), row_id
    except (ValueError, TypeError):
        raise InvalidInput((loc, "not a cursor this service issued")) from None


def decode_int_cursor(cursor: str, *, loc: list[str | int]) -> tuple[int, UUID]:
    """The (number, id) a cursor holds; a 422 naming `loc` if it was not one of ours."""
    key, row_id = _decode(cursor, loc)
    if not isinstance(key, int) or isinstance(key, bool):
        raise InvalidInput((loc, "not a cursor this service issued"))
    return key, row_id


def _decode(cursor: str, loc: list[str | int]) -> tuple[object, UUID]:
    try:
        key, row_id = json.loads(base64.urlsafe_b64decode(cursor.encode()))
        return key, UUID(row_id)
    except (ValueError, TypeError, binascii.Error):
        raise InvalidInput((loc, "not a cursor this service issued")) from None


def page_of(
    rows: Sequence[R], limit: int, *, key: Callable[[R], tuple[SortKey, UUID]], out: Callable[[R], T]
) -> Page[T]:
    """The page for `rows` fetched with `LIMIT limit + 1`: the extra row only says there is more."""
    next_cursor = encode_cursor(*key(rows[limit - 1])) if len(rows) > limit else None
    return Page(items=[out(row) for row in rows[:limit]], next_cursor=next_cursor)
