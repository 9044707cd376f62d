"""Rules the documents state in words because JSON Schema cannot: each compares a value with today
or with another field (doc/api.md), or a webhook's URL with what its name resolves to. Schemathesis
loads this module (SCHEMATHESIS_HOOKS) so that the requests it calls valid obey them too; requests
it makes invalid on purpose are left alone."""

from datetime import UTC, date, datetime, timedelta
from typing import Any

import schemathesis

NOW = datetime.now(UTC)
RECENT = (NOW - timedelta(hours=1)).isoformat()
TODAY = NOW.date()
SAFE_WEBHOOK_URL = "http://127.0.0.1:9/fuzz"  # the discard port: deliveries there are refused and retried


def _instant(value: Any) -> datetime | None:
    try:
        parsed = datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None
    return parsed if parsed is not None and parsed.tzinfo is not None else None


def _day(value: Any) -> date | None:
    try:
        return date.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None


def _years(born: date) -> int:
    return TODAY.year - born.year - ((TODAY.month, TODAY.day) < (born.month, born.day))


def _within(value: Any, earliest: datetime, latest: datetime) -> bool:
    """True unless `value` is a timestamp outside [earliest, latest] (in UTC, as the services read it)."""
    instant = _instant(value)
    if instant is None:
        return True
    try:
        return earliest <= instant.astimezone(UTC) <= latest
    except OverflowError:
        return False


def _obey(fields: dict[str, Any]) -> None:
    """Rewrites, in place, the fields of one object that break a rule stated in words."""
    if not _within(fields.get("measured_at"), datetime(1900, 1, 1, tzinfo=UTC), NOW):  # not ahead of the clock
        fields["measured_at"] = RECENT
    for name in ("since", "until"):  # a filter's instant, from 1900 to 2999
        if not _within(fields.get(name), datetime(1900, 1, 1, tzinfo=UTC), datetime(2999, 12, 31, tzinfo=UTC)):
            fields[name] = RECENT
    born = _day(fields.get("birth_date"))
    if born is not None and not (born <= TODAY and _years(born) <= 150):  # not ahead, at most 150 years ago
        fields["birth_date"] = "1990-01-01"
    if isinstance(fields.get("url"), str):  # a webhook target: https to a public address (doc/alerts.md)
        fields["url"] = SAFE_WEBHOOK_URL  # (no name resolves here, the machine has no DNS)
    systolic, diastolic = fields.get("systolic_mmhg"), fields.get("diastolic_mmhg")
    if (
        isinstance(systolic, int | float) and isinstance(diastolic, int | float) and diastolic >= systolic
    ):  # diastolic below
        fields["systolic_mmhg"] = int(diastolic) + 1


@schemathesis.hook
def map_case(context: schemathesis.HookContext, case: schemathesis.Case) -> schemathesis.Case:
    """The query and body when they were generated valid, even if another part was not: in the
    stateful phase a case made invalid only by its path's patient id turns valid when the
    config's patient id replaces it, and is then checked as a valid request."""
    if case.meta is None:
        return case
    for location, part in (("query", case.query), ("body", case.body)):
        component = case.meta.components.get(location)  # absent: given, not generated (a link's value)
        if component is None or component.mode.is_positive:
            _obey_all(part)
    return case


@schemathesis.hook
def before_add_examples(context: schemathesis.HookContext, examples: list[schemathesis.Case]) -> None:
    """The documents' own examples (the Examples phase passes them here, not to map_case)."""
    for case in examples:
        _obey_all(case.query)
        _obey_all(case.body)


def _obey_all(part: Any) -> None:
    """`_obey` on a query or body, and on each reading of a batch."""
    if isinstance(part, dict):
        _obey(part)
        for item in part.get("readings") or []:
            if isinstance(item, dict):
                _obey(item)
