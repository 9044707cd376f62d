"""Field types safe to store: strings without control characters, numbers that are numbers.

PostgreSQL rejects NUL bytes in text (a 500 if it reaches the database), and other control
characters in names are always entry errors. Pydantic's lax mode would read `true` as 1 and
"37" as 37; a device that sends those is broken, so they are refused rather than stored.
"""

import re
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, Field, StringConstraints

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _no_control_chars(value: str) -> str:
    if _CONTROL.search(value):
        raise ValueError("must not contain control characters")
    return value


def _json_number(value: Any) -> Any:
    if isinstance(value, (bool, str)):
        raise ValueError("must be a JSON number")
    return value


def text(max_length: int, min_length: int = 1) -> Any:
    """A trimmed string of `min_length`..`max_length` characters with no control characters."""
    return Annotated[
        str,
        StringConstraints(strip_whitespace=True, min_length=min_length, max_length=max_length),
        AfterValidator(_no_control_chars),
    ]


def integer(ge: int, le: int, description: str | None = None) -> Any:
    """A JSON number with no fractional part, within [ge, le]."""
    return Annotated[int, BeforeValidator(_json_number), Field(ge=ge, le=le, description=description)]


def number(ge: float, le: float, description: str | None = None) -> Any:
    """A finite JSON number within [ge, le] (NaN and Infinity are refused)."""
    return Annotated[
        float, BeforeValidator(_json_number), Field(ge=ge, le=le, allow_inf_nan=False, description=description)
    ]
