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
from pydantic import (
    AfterValidator,
    AllowInfNan,
    AwareDatetime,
    BeforeValidator,
    GetJsonSchemaHandler,
    StringConstraints,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, PydanticCustomError

# C0 and C1 control characters; then bidirectional overrides and isolates (Trojan Source) and
# invisible characters: a name holding them reads differently on each screen, so two records
# could look like one patient. Written as regex escapes, which Python and the documents' ECMA
# regexes both read.
_CONTROL = r"\x00-\x1f\x7f-\x9f"
_HIDDEN = r"\u00ad\u061c\u115f\u1160\u17b4\u17b5\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2069\u3164\ufeff\uffa0"
# What the documents say of a text field: a visible character, none of those above.
TEXT_PATTERN = rf"^[^{_CONTROL}{_HIDDEN}]*[^\s{_CONTROL}{_HIDDEN}][^{_CONTROL}{_HIDDEN}]*$"


def _plain_text(value: str) -> str:
    """The same rule as TEXT_PATTERN, each part with its own message; then trimmed."""
    if re.search(f"[{_CONTROL}]", value):
        raise ValueError("must not contain control characters")
    if re.search(f"[{_HIDDEN}]", value):
        raise ValueError("must not contain invisible or text-direction characters")
    if not value.strip():
        raise ValueError("must not be blank")
    # One spelling per name: "José" typed with a combining accent is stored as the composed form.
    return unicodedata.normalize("NFC", value.strip())


@dataclass(frozen=True)
class _Documented:
    """Adds `pattern` to a field's JSON Schema without pydantic checking it a second time."""

    pattern: str

    def __get_pydantic_json_schema__(self, schema: CoreSchema, handler: GetJsonSchemaHandler) -> JsonSchemaValue:
        return {**handler(schema), "pattern": self.pattern}


def json_number(value: Any) -> Any:
    if isinstance(value, (bool, str)):
        raise ValueError("must be a JSON number")
    return value


@dataclass(frozen=True)
class Text(GroupedMetadata):
    """`Annotated[str, Text(100)]`: at most 100 characters as sent, not blank, no control or
    hidden characters; stored trimmed. The length is checked before trimming, as the document's
    `maxLength` says.

    Metadata rather than a function returning a type, so that the type checker sees a `str`."""

    max_length: int

    def __iter__(self) -> Iterator[object]:
        yield StringConstraints(max_length=self.max_length)
        yield AfterValidator(_plain_text)
        yield _Documented(TEXT_PATTERN)


@dataclass(frozen=True)
class Number(GroupedMetadata):
    """`Annotated[float, Number(10, 50)]`: a finite JSON number within [ge, le] (no NaN, no Infinity)."""

    ge: float
    le: float

    def __iter__(self) -> Iterator[object]:
        # The constraints before the validator: it still runs first (a BeforeValidator wraps what
        # precedes it), and pydantic then documents them as `minimum`/`maximum`; after it, they
        # reach the JSON Schema as `ge`/`le`, which no JSON Schema tool reads.
        yield Ge(self.ge)
        yield Le(self.le)
        yield AllowInfNan(False)
        yield BeforeValidator(json_number)


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


def _is_number(value: Any) -> bool:
    """A JSON number or a string of one: what pydantic would read as a Unix time."""
    return isinstance(value, int | float) or (isinstance(value, str) and _NUMBER.fullmatch(value) is not None)


def rfc3339_only(value: Any) -> Any:
    """pydantic reads a number (or a string of one) as a Unix time; the documents say date-time,
    so `until=0.5` is refused rather than read as 1970-01-01T00:00:00.5Z."""
    if _is_number(value):
        raise ValueError("must be an RFC 3339 date-time with an offset, not a number")
    return value


Timestamp = Annotated[AwareDatetime, BeforeValidator(rfc3339_only), AfterValidator(to_utc)]


def iso_date_only(value: Any) -> Any:
    """The same for a date: pydantic reads `0` or `"+0.0"` as 1970-01-01; the documents say date."""
    if _is_number(value):
        raise ValueError("must be a date (YYYY-MM-DD), not a number")
    return value


def rule_broken(message: str, *, field: str | None = None) -> PydanticCustomError:
    """The error of a rule that spans fields (a model validator's), naming the field at fault:
    `problems.field_errors` adds it to the error's location, which pydantic leaves at the model."""
    return PydanticCustomError("value_error", message, {"field": field} if field else None)


# Rules across fields are stated with `not` and `if`/`then`/`else` rather than `anyOf`/`oneOf` at
# the top of an object: client generators (openapi-python-client) read the latter as a union of
# partial models and lose the object's own properties, while they leave the former to validators.


def present(schema: dict[str, Any], *names: str) -> dict[str, Any]:
    """JSON Schema, for a rule across the fields of `schema`: each of `names` is sent and is not
    null. Each property's own schema is repeated in it: some generators (schemathesis) take a
    branch's properties in place of the object's rather than as well."""
    properties = schema["properties"]
    return {"required": list(names), "properties": {name: _non_null(properties[name]) for name in names}}


def absent(*names: str) -> dict[str, Any]:
    """JSON Schema: none of `names` is sent, or each is null."""
    return {"properties": {name: {"type": "null"} for name in names}}


def _non_null(schema: dict[str, Any]) -> dict[str, Any]:
    options = [option for option in schema.get("anyOf", [schema]) if option != {"type": "null"}]
    return options[0] if len(options) == 1 else {"anyOf": options}
