"""What both services' FHIR R4 routes share (doc/fhir.md): the media type, OperationOutcome for
every error, search parameters (strict or lenient handling, dates with prefixes, `_count`) and
searchset Bundles with `next` links.

Every resource is built through the `fhir.resources` R4B models, so nothing leaves the service that
does not validate against them. The FHIR routes stay out of the OpenAPI documents: a FHIR server
describes itself with its CapabilityStatement (`GET /fhir/metadata`).
"""

import json
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any
from urllib.parse import parse_qsl, urlencode

from fastapi import Depends, FastAPI, Request, Response
from fastapi.concurrency import run_in_threadpool
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.operationoutcome import OperationOutcome
from fhir.resources.R4B.resource import Resource
from pydantic import ValidationError

from painkiller_common.errors import DomainError, Invalid
from painkiller_common.http.pagination import CURSOR_PATTERN as JSON_CURSOR_PATTERN
from painkiller_common.http.pagination import MAX_LIMIT, decode_cursor
from painkiller_common.http.problems import ErrorFormat, FieldError, install_error_format
from painkiller_common.security.access import install_refusal_audit

PREFIX = "/fhir"
FHIR_JSON = "application/fhir+json"
FHIR_VERSION = "4.3.0"  # R4B: the models every resource is validated with
DEFAULT_COUNT = 20
# A transaction Bundle is one reading's Observations: a handful. More is refused before any is
# validated, which is the costly part.
MAX_BUNDLE_ENTRIES = 100

# The OperationOutcome issue code for each status (https://hl7.org/fhir/R4B/valueset-issue-type.html).
ISSUE_CODES = {
    400: "invalid",
    401: "login",
    403: "forbidden",
    404: "not-found",
    405: "not-supported",
    406: "not-supported",
    409: "conflict",
    410: "deleted",
    412: "multiple-matches",
    413: "too-long",
    415: "not-supported",
    422: "processing",
    429: "throttled",
    503: "transient",
}


class Gone(DomainError):
    """The resource existed and was deleted (FHIR answers 410, not 404)."""


class Malformed(Invalid):
    """A body that is not a valid FHIR resource of its type (400, not 422: FHIR keeps 422 for
    resources that break a profile or a business rule)."""


class MultipleMatches(DomainError):
    """A conditional create whose condition matches more than one resource (412)."""


class TooManyEntries(DomainError):
    """A transaction Bundle with more entries than one request may hold (413)."""


class BadRequest(DomainError):
    """A request FHIR itself calls malformed: not a resource, an unknown parameter under strict
    handling, a search value that cannot be read (400)."""


def is_fhir(request: Request) -> bool:
    return request.url.path == PREFIX or request.url.path.startswith(PREFIX + "/")


def _outcome_response(status: int, detail: str, errors: list[FieldError], headers: dict[str, str] | None) -> Response:
    return resource_response(
        outcome(status, detail, [(error.field, error.message) for error in errors]), status, headers
    )


# FHIR's own refusals; Malformed is a kind of Invalid (422) that FHIR answers 400.
STATUSES: dict[type[DomainError], int] = {
    Malformed: 400,
    BadRequest: 400,
    Gone: 410,
    MultipleMatches: 412,
    TooManyEntries: 413,
}


def install_error_handlers(app: FastAPI) -> None:
    """Every error on a FHIR path (this module's, a domain error, a refused token, a bad body,
    anything unexpected) as an OperationOutcome with FHIR's status, which FHIR clients read; a
    410 or 412 audited as the refusals it is (access.py)."""
    install_error_format(app, ErrorFormat(serves=is_fhir, render=_outcome_response, statuses=STATUSES))
    install_refusal_audit(app, Gone, MultipleMatches)


def resource_response(resource: Resource, status_code: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    return Response(resource.model_dump_json(exclude_none=True), status_code, headers, media_type=FHIR_JSON)


def outcome(status: int, detail: str, expressions: Sequence[tuple[str | None, str]] = ()) -> OperationOutcome:
    """An OperationOutcome: one issue per element at fault (`expression`), else one for it all."""
    code = ISSUE_CODES.get(status, "exception")
    severity = "error" if status < 500 else "fatal"
    issues = [
        {"severity": severity, "code": code, "diagnostics": message, **({"expression": [path]} if path else {})}
        for path, message in expressions
    ] or [{"severity": severity, "code": code, "diagnostics": detail}]
    return OperationOutcome.model_validate({"resourceType": "OperationOutcome", "issue": issues})


async def read_body(request: Request) -> bytes:
    return await request.body()


# The raw body, for routes that parse it as a resource themselves; as a dependency, so that a
# sync route (a SQLAlchemy session) gets it without blocking the event loop.
RawBody = Annotated[bytes, Depends(read_body)]


async def parse_off_the_loop(model: type[Resource], body: bytes) -> Resource:
    """`parse_resource` in a worker thread, for async routes: validating a large body takes a
    while (half a second for 1 MB), and the event loop serves every other request meanwhile."""
    return await run_in_threadpool(parse_resource, model, body)


def parse_resource(model: type[Resource], body: bytes) -> Resource:
    """The request's body as a resource of `model`; 400 with the elements at fault if it is not one,
    413 for a Bundle of more than MAX_BUNDLE_ENTRIES entries (counted before any is validated)."""
    try:
        data = json.loads(body)
    except (ValueError, RecursionError) as exc:  # RecursionError: nested deeper than any resource
        raise BadRequest(f"The body is not JSON: {type(exc).__name__}") from None
    expected = model.get_resource_type()
    if not isinstance(data, dict) or data.get("resourceType") != expected:
        raise BadRequest(f"Send a resource of type {expected}.")
    entries = data.get("entry")
    if expected == "Bundle" and isinstance(entries, list) and len(entries) > MAX_BUNDLE_ENTRIES:
        raise TooManyEntries(f"Bundle.entry: at most {MAX_BUNDLE_ENTRIES} entries, not {len(entries)}.")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise Malformed(*[([element_path(expected, err["loc"])], err["msg"][:300]) for err in exc.errors()]) from None


def element_path(resource_type: str, loc: Sequence[str | int]) -> str:
    """pydantic's location as a FHIRPath: `("name", 0, "given")` -> `Patient.name[0].given`."""
    path = resource_type
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else f".{part}"
    return path


def base_url(request: Request, configured: str | None) -> str:
    """The FHIR base clients use: the configured one (`FHIR_BASE_URL`), else the one this request
    came to, by its `Host` (NGINX passes the one the client sent, port included, once it matched
    ALLOWED_HOSTS). Never `X-Forwarded-Host`: anyone reaching a service directly could write it,
    and point the links and `Location` of the answer elsewhere."""
    if configured:
        return configured.rstrip("/")
    host = request.headers.get("host") or request.url.netloc
    return f"{request.url.scheme}://{host}{PREFIX}"


# --- Search -----------------------------------------------------------------------------------

CURSOR = "_cursor"  # our paging parameter: opaque, only ever taken from a `next` link
COMMON_PARAMETERS = frozenset({"_count", "_format", CURSOR})
# The JSON API's cursor, and how many of the reading's Observations were already served.
CURSOR_PATTERN = re.compile(JSON_CURSOR_PATTERN.removesuffix("$") + r"(\.[0-9]{1,2})?$")


@dataclass(frozen=True)
class Search:
    """A search's parameters, with those the server does not know already dealt with."""

    params: list[tuple[str, str]]  # the ones used, in the order sent
    count: int
    cursor: str | None
    ignored: tuple[str, ...] = ()  # unknown ones, under lenient handling

    def values(self, name: str) -> list[str]:
        return [value for key, value in self.params if key == name]

    def position(self) -> tuple[datetime, uuid.UUID, int] | None:
        """Where the page starts: the cursor's time and row, and how many resources of that row
        the pages before served (a reading holds several Observations)."""
        if self.cursor is None:
            return None
        key, row, *served = self.cursor.split(".")
        at, row_id = decode_cursor(f"{key}.{row}")
        return at, row_id, int(served[0]) if served else 0

    def link(self, base: str, resource_type: str, cursor: str | None = None) -> str:
        """The URL of this search (self), or of its next page: only the parameters used."""
        params = [*self.params, ("_count", str(self.count))]
        if cursor:
            params.append((CURSOR, cursor))
        return f"{base}/{resource_type}?{urlencode(params)}"


def search(request: Request, known: frozenset[str]) -> Search:
    """The search parameters of `request`. An unknown one is refused with `Prefer: handling=strict`
    and otherwise ignored, and left out of the self link (FHIR R4 search, 3.1.1.3.1)."""
    strict = "handling=strict" in request.headers.get("prefer", "").replace(" ", "")
    return parse_search(request.query_params.multi_items(), known, strict=strict)


def condition(request: Request, known: frozenset[str]) -> Search | None:
    """A conditional create's `If-None-Exist` search, strict: an ignored parameter would widen it."""
    header = request.headers.get("if-none-exist")
    if header is None:
        return None
    query = parse_search(parse_qsl(header.lstrip("?"), keep_blank_values=True), known, strict=True)
    if not query.params:
        raise BadRequest("If-None-Exist needs search parameters, such as patient, code and date.")
    return Search(query.params, 2, None)  # two are enough to tell one match from several


def parse_search(items: Sequence[tuple[str, str]], known: frozenset[str], *, strict: bool) -> Search:
    used, unknown = [], []
    for name, value in items:
        if "\x00" in name or "\x00" in value:  # PostgreSQL stores no NUL in text
            raise BadRequest("A search parameter holds a NUL character.")
        bare = name.split(":")[0]  # no modifier is supported: `name:exact` is unknown too
        if name in known or (name == bare and bare in COMMON_PARAMETERS):
            used.append((name, value))
        else:
            unknown.append(name)
    if unknown and strict:
        raise BadRequest(f"Unknown search parameters: {', '.join(sorted(set(unknown)))}.")
    formats = [value for name, value in used if name == "_format"]
    if any(value not in ("json", FHIR_JSON, "application/json") for value in formats):
        raise BadRequest("Only JSON is served (_format=json).")
    counts, cursors = [v for n, v in used if n == "_count"], [v for n, v in used if n == CURSOR]
    rest = [(n, v) for n, v in used if n not in COMMON_PARAMETERS]
    count, cursor = _count(counts[-1] if counts else None), _cursor(cursors[-1] if cursors else None)
    return Search(rest, count, cursor, tuple(sorted(set(unknown))))


def _count(value: str | None) -> int:
    if value is None:
        return DEFAULT_COUNT
    if not (value.isascii() and value.isdigit()) or int(value) < 1:
        raise BadRequest("_count must be a whole number of at least 1.")
    return min(int(value), MAX_LIMIT)  # a server may return fewer than asked, never more


def _cursor(value: str | None) -> str | None:
    if value is not None and not CURSOR_PATTERN.match(value):
        raise BadRequest("_cursor is opaque: take it from a `next` link unchanged.")
    return value


def searchset(
    base: str, resource_type: str, query: Search, resources: Sequence[Resource], next_cursor: str | None
) -> Bundle:
    links = [{"relation": "self", "url": query.link(base, resource_type)}]
    if next_cursor:
        links.append({"relation": "next", "url": query.link(base, resource_type, next_cursor)})
    entries: list[dict[str, Any]] = [
        {"fullUrl": f"{base}/{r.get_resource_type()}/{r.id}", "resource": r, "search": {"mode": "match"}}
        for r in resources
    ]
    if query.ignored:  # say what was ignored, beside the self link that leaves it out
        ignored = f"Ignored unknown search parameters: {', '.join(query.ignored)}."
        warning = {"severity": "warning", "code": "not-supported", "diagnostics": ignored}
        outcome = {"resourceType": "OperationOutcome", "issue": [warning]}
        entries.append({"resource": outcome, "search": {"mode": "outcome"}})
    return Bundle.model_validate({"resourceType": "Bundle", "type": "searchset", "link": links, "entry": entries})


# --- Dates ------------------------------------------------------------------------------------

PREFIXES = ("eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap")
SUPPORTED_PREFIXES = ("eq", "gt", "lt", "ge", "le")
_DATE = re.compile(r"^(\d{4})(-(\d{2})(-(\d{2}))?)?$")


@dataclass(frozen=True)
class DateRange:
    """The instants [start, end) a search date stands for (its precision), and its prefix."""

    prefix: str
    start: datetime
    end: datetime

    def bounds(self) -> tuple[datetime | None, datetime | None]:
        """Which values match, as (at or after, before)."""
        return {
            "eq": (self.start, self.end),
            "ge": (self.start, None),
            "gt": (self.end, None),
            "le": (None, self.end),
            "lt": (None, self.start),
        }[self.prefix]


def date_range(parameter: str, value: str) -> DateRange:
    """`ge2026-11-26`, `lt2026-11-26T08:30:00Z`, `2026-11`: a prefix and a date of any precision.
    A time must have a zone: without one the instant it names is unknown."""
    prefix, text = (value[:2], value[2:]) if value[:2] in PREFIXES else ("eq", value)
    if prefix not in SUPPORTED_PREFIXES:
        raise BadRequest(f"{parameter}: the prefix {prefix} is not supported; use eq, gt, lt, ge or le.")
    if match := _DATE.match(text):
        year, month, day = int(match[1]), int(match[3] or 1), int(match[5] or 1)
        try:
            start = datetime(year, month, day, tzinfo=UTC)
            return DateRange(prefix, start, _after(start, month=match[3] is not None, day=match[5] is not None))
        except (ValueError, OverflowError):  # no such day, or none after it (9999-12-31)
            raise BadRequest(f"{parameter}: {text} is not a date that can be searched.") from None
    try:
        instant = datetime.fromisoformat(text.replace("Z", "+00:00"))
        end = instant + (timedelta(seconds=1) if instant.microsecond == 0 else timedelta(microseconds=1))
    except (ValueError, OverflowError):
        raise BadRequest(f"{parameter}: {text!r} is not a FHIR date or dateTime.") from None
    if instant.tzinfo is None:
        raise BadRequest(f"{parameter}: a time needs a zone (Z or +hh:mm).")
    return DateRange(prefix, instant, end)


def _after(start: datetime, *, month: bool, day: bool) -> datetime:
    """The first instant after a date of year, month or day precision."""
    if day:
        return start + timedelta(days=1)
    if month:
        return (start.replace(day=28) + timedelta(days=4)).replace(day=1)
    return start.replace(year=start.year + 1)


def day_bounds(ranges: Sequence[DateRange]) -> tuple[date | None, date | None]:
    """Several date parameters together (AND), as dates: (on or after, before)."""
    low, high = instant_bounds(ranges)
    return (low.date() if low else None, high.date() if high else None)


def instant_bounds(ranges: Sequence[DateRange]) -> tuple[datetime | None, datetime | None]:
    """Several date parameters together (AND): the latest lower bound and the earliest upper one."""
    lows = [low for low, _ in (r.bounds() for r in ranges) if low is not None]
    highs = [high for _, high in (r.bounds() for r in ranges) if high is not None]
    return (max(lows) if lows else None, min(highs) if highs else None)


def reference_id(parameter: str, value: str, resource_type: str) -> str:
    """`Patient/123`, or `123`, or the same under a base URL: the id `123`."""
    tail = value.rstrip("/").split("/")
    if len(tail) >= 2 and tail[-2] != resource_type:
        raise BadRequest(f"{parameter} must reference a {resource_type}.")
    return tail[-1]
