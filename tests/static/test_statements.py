"""Named parameters (painkiller_common.db.statements) and the hot statements written with them."""

import pytest

from measurement_service.readings import statements
from painkiller_common.db.statements import Statement
from painkiller_common.security.audit import SHARED

AUDIT = {f"audit_{name}" for name in SHARED}


def test_names_become_psycopg_placeholders() -> None:
    compiled = Statement.compile(
        "SELECT :b::uuid, :a, :b, 'x::text', x::int, to_char(t, 'HH24:MI:SS'), ARRAY[1], n % 1000"
    )
    assert compiled.sql == (
        "SELECT %(b)s::uuid, %(a)s, %(b)s, 'x::text', x::int, to_char(t, 'HH24:MI:SS'), ARRAY[1], n %% 1000"
    )
    assert compiled.native == "SELECT $1::uuid, $2, $1, 'x::text', x::int, to_char(t, 'HH24:MI:SS'), ARRAY[1], n % 1000"
    assert compiled.names == ("b", "a")
    assert compiled.ordered({"a": 1, "b": 2, "unused": 3}) == [2, 1]
    assert compiled.args({"a": 1, "b": 2, "unused": 3}) == {"b": 2, "a": 1}


def test_a_missing_value_names_its_parameter() -> None:
    with pytest.raises(KeyError, match="patient"):
        Statement.compile("SELECT :patient").args({})


COLUMNS = set(statements.COLUMNS)
STORE = {"patients", "request_id", "traceparent"}
CLAIM = {"scope", "key", "fingerprint", "status", "answer", "location", "records"}


@pytest.mark.parametrize(
    ("statement", "names"),
    [
        (statements.RECORD_ONE, COLUMNS | STORE | AUDIT),
        (statements.RECORD_ONE_ONCE, COLUMNS | STORE | AUDIT | CLAIM),
        (statements.RECORD_MANY, {"rows"} | STORE | AUDIT),
        (statements.LEARN, {"patients"}),
        (
            statements.page(scoped=True, by_patient=True, since=True, until=True, after=True),
            {"patient", "since", "until", "after_at", "after_id", "fetch", "limit"} | AUDIT,
        ),
        (statements.page(scoped=False, by_patient=False, since=False, until=False, after=False),
         {"patient", "fetch", "limit"} | AUDIT),
    ],
)  # fmt: skip
def test_each_hot_statement_takes_exactly_the_values_it_is_given(statement: Statement, names: set[str]) -> None:
    assert set(statement.names) == names


def test_a_page_shape_is_compiled_once() -> None:
    shape = {"scoped": False, "by_patient": True, "since": False, "until": True, "after": False}
    assert statements.page(**shape) is statements.page(**shape)
