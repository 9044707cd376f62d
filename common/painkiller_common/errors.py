"""What use cases raise when a request cannot be done: domain errors, with no HTTP in them.

The API layer (problems.py) answers each class with its status as RFC 9457 problem+json, and puts
an `Invalid` error's paths under the request's body; consumers and scripts see plain exceptions.
"""

from collections.abc import Sequence

Path = list[str | int]


class DomainError(Exception):
    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class NotFound(DomainError):
    """What the request names does not exist, or is not the caller's to see."""


class Conflict(DomainError):
    """The request contradicts what is stored (a unique MRN, an Idempotency-Key's first body)."""


class Unavailable(DomainError):
    """Something this service depends on did not answer; the same request may work shortly."""


class Invalid(DomainError):
    """Input that passed its schema but breaks a rule checked later; each error is `(path,
    message)`, the path within the input (`["readings", 3, "spo2_percent"]`, `[]` for all of it)."""

    def __init__(self, *errors: tuple[Sequence[str | int], str]) -> None:
        self.errors: list[tuple[Path, str]] = [(list(path), message) for path, message in errors]
        super().__init__("; ".join(message for _, message in errors))
