"""Keyset pagination: an opaque cursor and a page envelope.

A cursor is the sort key of the last row a client saw, so a page costs the same on the first
and the millionth row (no OFFSET, no COUNT). It is written `<key>.<row id in hex>`, the key a
number (microseconds since 1970 for a timestamp): every string its pattern matches is a position
in the order, so the documents can state the whole rule and no cursor needs a check of its own.
A made-up cursor only moves where a page starts; filters and access rules apply as always.
"""

from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Annotated, Generic, TypeVar
from uuid import UUID

from annotated_types import Ge
from pydantic import BaseModel, BeforeValidator, Field

from painkiller_common.fields import json_number

DEFAULT_LIMIT = 50
MAX_LIMIT = 200

T = TypeVar("T")
R = TypeVar("R")

Limit = Annotated[int, Ge(1), Field(description=f"Page size; values above {MAX_LIMIT} are clamped.")]
# In a JSON body, a number: pydantic would read `true` as 1 and "5" as 5 (a query has only text).
JsonLimit = Annotated[Limit, BeforeValidator(json_number)]
CURSOR_EXAMPLE = "1764201600000000.0b9f7a8c2d3e4f5061728394a5b6c7d8"
CURSOR_PATTERN = r"^-?[0-9]{1,16}\.[0-9a-f]{32}$"
Cursor = Annotated[
    str,
    Field(
        pattern=CURSOR_PATTERN,
        description="Opaque: pass a page's `next_cursor` back unchanged.",
        examples=[CURSOR_EXAMPLE],
    ),
]


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last page.")


def clamp_limit(limit: int | None) -> int:
    return min(limit or DEFAULT_LIMIT, MAX_LIMIT)


SortKey = datetime | int
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def encode_cursor(key: SortKey, row_id: UUID) -> str:
    number = (key - EPOCH) // timedelta(microseconds=1) if isinstance(key, datetime) else key
    return f"{number}.{row_id.hex}"


def decode_cursor(cursor: str) -> tuple[datetime, UUID]:
    """The (timestamp, id) a cursor holds; its pattern (checked by the schema) keeps the
    timestamp within 1653..2286, which datetime and PostgreSQL both hold."""
    number, row_id = decode_int_cursor(cursor)
    return EPOCH + timedelta(microseconds=number), row_id


def decode_int_cursor(cursor: str) -> tuple[int, UUID]:
    """The (number, id) a cursor holds."""
    number, row_id = cursor.split(".")
    return int(number), UUID(hex=row_id)


def page_of(
    rows: Sequence[R], limit: int, *, key: Callable[[R], tuple[SortKey, UUID]], out: Callable[[R], T]
) -> Page[T]:
    """The page for `rows` fetched with `LIMIT limit + 1`: the extra row only says there is more."""
    next_cursor = encode_cursor(*key(rows[limit - 1])) if len(rows) > limit else None
    return Page(items=[out(row) for row in rows[:limit]], next_cursor=next_cursor)
