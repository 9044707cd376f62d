"""Importing the hospital's patient CSV: `patient_id,first_name,last_name,age,condition`.

`patient_id` is the hospital's record number and becomes `mrn`; `condition` becomes one entry of
`conditions`. Importing is idempotent on `mrn`: a known MRN updates that patient (adding the
condition if new), an unknown one creates a patient. Each line is validated on its own and a
rejected line is reported by its line number (the header is line 1); the rest are imported.
"""

import csv
import io
import re
import uuid
from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict, ValidationError
from sqlalchemy import select

from painkiller_common.db.outbox import UnitOfWork
from painkiller_common.errors import Invalid
from painkiller_common.http.problems import FieldError, field_errors
from patient_service.models import Patient
from patient_service.patients import service
from patient_service.patients.schemas import PatientCreate

COLUMNS = ["patient_id", "first_name", "last_name", "age", "condition"]
# What a file must start with: checked here on the raw text and stated as the body's `pattern`
# in the OpenAPI document, so both say the same (an optional byte-order mark, then the header).
HEADER_PATTERN = r"^\ufeff?" + ",".join(COLUMNS) + r"(\r?\n|$)"
MAX_ROWS = 20_000
EXAMPLE = "patient_id,first_name,last_name,age,condition\nMRN-1001,Grace,Hopper,85,hypertension\n"
BODY_SCHEMA = {"contentMediaType": "text/csv", "pattern": HEADER_PATTERN, "examples": [EXAMPLE]}


class RejectedLine(BaseModel):
    line: int
    errors: list[FieldError]


class ImportReport(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "created": 1,
                    "updated": 0,
                    "unchanged": 0,
                    "rejected": [
                        {
                            "line": 3,
                            "errors": [
                                {
                                    "loc": ["line", 3, "age"],
                                    "field": "3.age",
                                    "message": "Input should be less than or equal to 150",
                                    "type": "value_error",
                                }
                            ],
                        }
                    ],
                }
            ]
        }
    )

    created: int
    updated: int
    unchanged: int
    rejected: list[RejectedLine]


def import_patients(*, session: UnitOfWork, body: bytes) -> tuple[ImportReport, list[uuid.UUID]]:
    """The report, and the ids of the patients created or updated (for the audit trail)."""
    rows = _parse(body)
    accepted: dict[str, PatientCreate] = {}
    rejected: list[RejectedLine] = []
    for line, row in rows:
        if None in row or None in row.values():  # more or fewer fields than the header
            rejected.append(RejectedLine(line=line, errors=[_error(line, "row", f"expected {len(COLUMNS)} fields")]))
            continue
        try:
            data = _patient(row)
        except ValidationError as exc:
            rejected.append(RejectedLine(line=line, errors=_in_csv_terms(exc, line)))
            continue
        if data.mrn in accepted:
            message = "patient_id appears on an earlier line of this file"
            rejected.append(RejectedLine(line=line, errors=[_error(line, "patient_id", message)]))
            continue
        assert data.mrn is not None  # the CSV's patient_id column is required (_patient)
        accepted[data.mrn] = data
    existing = {
        p.mrn: p for p in session.scalars(select(Patient).where(Patient.mrn.in_(accepted)).with_for_update(of=Patient))
    }
    now = datetime.now(UTC)
    created = [service.add(session, data, now) for mrn, data in accepted.items() if mrn not in existing]
    updated = [p for mrn, p in existing.items() if mrn is not None and _update(session, p, accepted[mrn], now)]
    session.flush()
    report = ImportReport(
        created=len(created), updated=len(updated), unchanged=len(existing) - len(updated), rejected=rejected
    )
    return report, [patient.id for patient in created + updated]


def _parse(body: bytes) -> list[tuple[int, dict[str, str]]]:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise Invalid(([], "the file is not UTF-8 text")) from None
    if not re.match(HEADER_PATTERN, text):
        raise Invalid(([], "the first line must be the header " + ",".join(COLUMNS)))
    reader = csv.DictReader(io.StringIO(text.removeprefix("\ufeff"), newline=""))
    rows = []
    try:
        for row in reader:
            rows.append((reader.line_num, row))
            if len(rows) > MAX_ROWS:
                raise Invalid(([], f"at most {MAX_ROWS} lines per import"))
    except csv.Error as exc:
        raise Invalid(([], f"line {reader.line_num}: {exc}")) from None
    return rows


def _patient(row: dict[str, str]) -> PatientCreate:
    age = row["age"].strip()
    condition = row["condition"].strip()
    return PatientCreate.model_validate(
        {
            "mrn": row["patient_id"],
            "first_name": row["first_name"],
            "last_name": row["last_name"],
            # ASCII digits only: "²" is a digit to isdigit(), not to int(). Else a string, refused.
            "age": int(age) if age.isascii() and age.isdigit() else age,
            "conditions": [condition] if condition else [],
        }
    )


# The API's field names, as the file calls them.
CSV_NAMES = {"mrn": "patient_id", "conditions": "condition"}


def _in_csv_terms(exc: ValidationError, line: int) -> list[FieldError]:
    return [
        _error(line, CSV_NAMES.get(str(e.loc[0]), str(e.loc[0])) if e.loc else "row", e.message)
        for e in field_errors(exc.errors())
    ]


def _error(line: int, field: str, message: str) -> FieldError:
    return FieldError(loc=["line", line, field], field=f"{line}.{field}", message=message, type="value_error")


def _update(session: UnitOfWork, patient: Patient, data: PatientCreate, now: datetime) -> bool:
    """Apply the line to a known patient; False if it changes nothing. A birth date on record
    stays: the file's age is the coarser fact."""
    conditions = patient.conditions + [c for c in data.conditions if c not in patient.conditions]
    changes: dict[str, object] = {"first_name": data.first_name, "last_name": data.last_name, "conditions": conditions}
    if patient.birth_date is None:
        changes["age"] = data.age
    return service.change(session, patient, changes, now)
