"""Field types safe to store: strings without control characters, numbers that are numbers.

PostgreSQL rejects NUL bytes in text (a 500 if it reaches the database), and other control
characters in names are always entry errors. Pydantic's lax mode would read `true` as 1 and
"37" as 37; a device that sends those is broken, so they are refused rather than stored.
"""

import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

from annotated_types import Ge, GroupedMetadata, Le
from pydantic import AfterValidator, AllowInfNan, AwareDatetime, BeforeValidator, StringConstraints

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# Bidirectional overrides and isolates (Trojan Source) and invisible characters: a name holding
# them reads differently on each screen, so two records could look like one patient.
_HIDDEN = re.compile(
    "[\u00ad\u061c\u115f\u1160\u17b4\u17b5\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2069\u3164\ufeff\uffa0]"
)


def _no_control_chars(value: str) -> str:
    if _CONTROL.search(value):
        raise ValueError("must not contain control characters")
    if _HIDDEN.search(value):
        raise ValueError("must not contain invisible or text-direction characters")
    # One spelling per name: "José" typed with a combining accent is stored as the composed form.
    return unicodedata.normalize("NFC", value)


def json_number(value: Any) -> Any:
    if isinstance(value, (bool, str)):
        raise ValueError("must be a JSON number")
    return value


@dataclass(frozen=True)
class Text(GroupedMetadata):
    """`Annotated[str, Text(100)]`: trimmed, 1..100 characters, no control or hidden characters.

    Metadata rather than a function returning a type, so that the type checker sees a `str`."""

    max_length: int
    min_length: int = 1

    def __iter__(self) -> Iterator[object]:
        yield StringConstraints(strip_whitespace=True, min_length=self.min_length, max_length=self.max_length)
        yield AfterValidator(_no_control_chars)


@dataclass(frozen=True)
class Number(GroupedMetadata):
    """`Annotated[float, Number(10, 50)]`: a finite JSON number within [ge, le] (no NaN, no Infinity)."""

    ge: float
    le: float

    def __iter__(self) -> Iterator[object]:
        yield BeforeValidator(json_number)
        yield Ge(self.ge)
        yield Le(self.le)
        yield AllowInfNan(False)


class Integer(Number):
    """`Annotated[int, Integer(0, 150)]`: a JSON number with no fractional part, within [ge, le]
    (an int is never NaN: the NaN rule does nothing here)."""


def to_utc(value: datetime) -> datetime:
    """The same instant in UTC, within years PostgreSQL and the clinic care about.

    PostgreSQL refuses UTC offsets beyond ±15:59 that ISO 8601 allows, so every timestamp is
    normalised here rather than failing in the database.
    """
    try:
        utc = value.astimezone(UTC)
    except OverflowError:
        raise ValueError("is out of range") from None
    if not 1900 <= utc.year <= 2999:
        raise ValueError("must be between the years 1900 and 2999")
    return utc


_NUMBER = re.compile(r"\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*")


def rfc3339_only(value: Any) -> Any:
    """pydantic reads a number (or a string of one) as a Unix time; the documents say date-time,
    so `until=0.5` is refused rather than read as 1970-01-01T00:00:00.5Z."""
    if isinstance(value, int | float) or (isinstance(value, str) and _NUMBER.fullmatch(value)):
        raise ValueError("must be an RFC 3339 date-time with an offset, not a number")
    return value


Timestamp = Annotated[AwareDatetime, BeforeValidator(rfc3339_only), AfterValidator(to_utc)]
