"""Statements for asyncpg written with named parameters (`:name`), compiled once into the `$1, $2`
form asyncpg sends, so the SQL reads as SQL and its arguments are given by name, not by position.

A name is lower case (`:patient_id`); a cast (`::uuid`) and anything after a letter or digit (the
`HH24:MI` of a `to_char` format) is not a parameter.
"""

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

_NAMED = re.compile(r"(?<![:\w]):([a-z_][a-z0-9_]*)")


@dataclass(frozen=True)
class Statement:
    sql: str  # as sent, with `$n` placeholders
    names: tuple[str, ...]  # the parameter `$n` is `names[n - 1]`

    @classmethod
    def compile(cls, named_sql: str) -> "Statement":
        names: list[str] = []

        def number(match: re.Match[str]) -> str:
            if match.group(1) not in names:
                names.append(match.group(1))
            return f"${names.index(match.group(1)) + 1}"

        return cls(_NAMED.sub(number, named_sql), tuple(names))

    def args(self, values: Mapping[str, Any]) -> list[Any]:
        """The arguments in `$n` order; a KeyError names a parameter that was not given."""
        return [values[name] for name in self.names]
