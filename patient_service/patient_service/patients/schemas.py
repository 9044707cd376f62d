"""What the patient API accepts and returns."""

import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any, Literal, Self

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from painkiller_common.contracts import Location, PatientRecord, Sex
from painkiller_common.fields import Integer, Text, absent, iso_date_only, json_number, present, rule_broken
from painkiller_common.http.pagination import Cursor, JsonLimit, Limit
from patient_service.risk import chart
from patient_service.risk import scores as risk
from patient_service.risk.chart import ChartRow
from patient_service.risk.scores import Band, BpCategory, Parameter, RiskAssessment

Name = Annotated[str, Text(100)]
Mrn = Annotated[str, Text(64)]
Condition = Annotated[str, Text(200)]
Age = Annotated[
    int, Integer(0, 150), Field(description="Age in whole years; derived from birth_date when that is known.")
]
MAX_AGE = 150
EXAMPLE_ID = "0b9f7a8c-2d3e-4f50-8172-8394a5b6c7d8"
EXAMPLE_AT = datetime(2026, 11, 26, 8, 30, tzinfo=UTC)
# NEWS2 SpO2 scale; `true` is not 1.
SpO2Scale = Annotated[Literal[1, 2], BeforeValidator(json_number)]


def today() -> date:
    return datetime.now(UTC).date()


def years_between(born: date, on: date) -> int:
    return on.year - born.year - ((on.month, on.day) < (born.month, born.day))


def _plausible_birth_date(value: date) -> date:
    if value > today():
        raise ValueError("must not be in the future")
    if years_between(value, today()) > MAX_AGE:
        raise ValueError(f"must be within the last {MAX_AGE} years")
    return value


BirthDate = Annotated[
    date,
    BeforeValidator(iso_date_only),
    AfterValidator(_plausible_birth_date),
    Field(description=f"Not in the future, nor more than {MAX_AGE} years ago."),
]


def one_of_age_and_birth_date(age: int | None, birth_date: date | None) -> None:
    """Age and birth date describe one fact: a request sets one of them, never both, so that
    they cannot disagree."""
    if age is not None and birth_date is not None:
        raise rule_broken("send one of age or birth_date, not both", field="age")


class PatientCreate(BaseModel):
    """A new patient, with exactly one of `age` or `birth_date`."""

    model_config = ConfigDict(
        extra="forbid",
        # Exactly one of age and birth_date: without an age, a birth date; with one, none.
        json_schema_extra=lambda schema: schema.update(
            {"if": absent("age"), "then": present(schema, "birth_date"), "else": absent("birth_date")},
            examples=[
                {"mrn": "MRN-1001", "first_name": "Grace", "last_name": "Hopper", "birth_date": "1941-12-09"},
                {"first_name": "Ada", "last_name": "Lovelace", "age": 36, "sex": "female", "conditions": ["asthma"]},
            ],
        ),
    )

    mrn: Mrn | None = Field(default=None, description="Hospital medical record number; unique.")
    first_name: Name
    last_name: Name
    age: Age | None = None
    birth_date: BirthDate | None = None
    sex: Sex = "unknown"
    conditions: list[Condition] = Field(default_factory=list, max_length=50)
    spo2_scale: SpO2Scale = 1
    location: Location | None = Field(default=None, description="Ward, room and bed.")

    @model_validator(mode="after")
    def _age_or_birth_date(self) -> Self:
        if self.age is None and self.birth_date is None:
            raise rule_broken("one of age or birth_date is required", field="age")
        one_of_age_and_birth_date(self.age, self.birth_date)
        return self


class PatientUpdate(BaseModel):
    """Partial update: only the fields sent are changed; required fields cannot be nulled. Age and
    birth date describe one fact: setting one replaces the other, and only one may be sent."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra=lambda schema: schema.update(
            {
                "not": present(schema, "age", "birth_date"),
                "examples": [{"last_name": "Hopper-Murray"}, {"spo2_scale": 2}],
            }
        ),
    )

    # The `None` defaults below only mean "not sent" (the service reads `exclude_unset`); the
    # types stay non-null so that an explicit `null` is refused, hence the type checker's
    # objection to those defaults is ignored, on purpose, field by field.

    mrn: Mrn | None = None
    first_name: Name = None  # type: ignore[assignment]
    last_name: Name = None  # type: ignore[assignment]
    age: Age = None  # type: ignore[assignment]
    birth_date: BirthDate | None = None
    sex: Sex = None  # type: ignore[assignment]
    conditions: list[Condition] = Field(default=None, max_length=50)  # type: ignore[arg-type]
    spo2_scale: SpO2Scale = None  # type: ignore[assignment]
    location: Location | None = Field(default=None, description="Ward, room and bed; null: not in a bed.")

    @model_validator(mode="after")
    def _age_or_birth_date(self) -> Self:
        one_of_age_and_birth_date(self.age, self.birth_date)
        return self


class LatestVital(BaseModel):
    value: float | int | bool | str
    measured_at: datetime
    measurement_id: uuid.UUID


class RiskSummary(BaseModel):
    news2_total: int | None
    band: Band | None
    sub_scores: dict[Parameter, int | None] = Field(description="Each NEWS2 parameter's 0-3; null where missing.")
    bp_category: BpCategory | None
    based_on: datetime | None = Field(description="When the newest reading behind it was measured.")


DUE = (
    "When the next set of observations is due: the NEWS2 of the latest complete set's time plus the"
    " RCP's minimum frequency (0: 12 h, 1-4: 4 h, a 3 in one parameter or 5-6: 1 h, 7+: 15 min) or the"
    " ward's; without a complete set, since registration. Null once discharged."
)
OVERDUE = "True once `next_observation_due_at` has passed."


class PatientOut(PatientRecord):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": EXAMPLE_ID, "mrn": "MRN-1001", "first_name": "Grace", "last_name": "Hopper", "age": 84,
                    "birth_date": "1941-12-09", "sex": "female", "conditions": ["hypertension"], "spo2_scale": 1,
                    "created_at": "2026-11-20T14:02:11.5Z", "updated_at": "2026-11-20T14:02:11.5Z",
                    "latest_vitals": {
                        "heart_rate_bpm": {
                            "value": 96, "measured_at": "2026-11-26T08:30:00Z",
                            "measurement_id": "6a1f2e3d-4c5b-4a69-8877-665544332211",
                        },
                    },
                    "risk": {
                        "news2_total": 5, "band": "medium", "bp_category": "stage_1_hypertension",
                        "based_on": "2026-11-26T08:30:00Z",
                        "sub_scores": {"respiration_rate": 2, "spo2": 1, "air_or_oxygen": 0, "systolic_bp": 0,
                                       "pulse": 1, "consciousness": 0, "temperature": 1},
                    },
                    "next_observation_due_at": "2026-11-26T09:30:00Z", "overdue": False,
                }
            ]
        }
    )  # fmt: skip

    latest_vitals: dict[str, LatestVital] = Field(
        default_factory=dict,
        description="Latest value of each vital and when it was measured, fed by measurement events.",
    )
    risk: RiskSummary | None = Field(default=None, description="Null until the patient has a reading.")
    next_observation_due_at: datetime | None = Field(description=DUE)
    overdue: bool = Field(description=OVERDUE)


class AtRiskFilter(BaseModel):
    model_config = ConfigDict(extra="forbid")

    min_band: Band = Field(default="medium", description="Lowest band listed.")
    limit: Limit | None = None
    cursor: Cursor | None = None


class AtRiskPatient(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": EXAMPLE_ID, "mrn": "MRN-1001", "first_name": "Grace", "last_name": "Hopper", "news2_total": 5,
                    "band": "medium", "bp_category": "stage_1_hypertension", "based_on": "2026-11-26T08:30:00Z",
                    "next_observation_due_at": "2026-11-26T09:30:00Z", "overdue": True,
                }
            ]
        }
    )  # fmt: skip

    id: uuid.UUID
    mrn: str | None
    first_name: str
    last_name: str
    news2_total: int
    band: Band
    bp_category: BpCategory | None
    based_on: datetime
    next_observation_due_at: datetime | None = Field(description=DUE)
    overdue: bool = Field(description=OVERDUE)


class PatientFilter(BaseModel):
    """Filters of `GET /api/v1/patient`."""

    model_config = ConfigDict(extra="forbid")

    name: Name | None = Field(default=None, description="Case-insensitive part of first or last name.")
    mrn: Mrn | None = None
    ward: Annotated[str, Text(50)] | None = Field(default=None, description="Only the patients on this ward.")
    limit: Limit | None = None
    cursor: Cursor | None = None


class PatientSearch(PatientFilter):
    """The body of `POST /api/v1/patient/list`: the filters of `GET /api/v1/patient`."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"name": "hopp", "limit": 20}]})

    limit: JsonLimit | None = None


def _assessment_example() -> dict[str, Any]:
    """A real assessment of six hours of readings, so that the example is what the service sends.
    Readings enough for every figure: the document drops nulls from examples (FastAPI)."""
    readings = [
        risk.Reading(
            measured_at=EXAMPLE_AT + timedelta(hours=hour), id=str(hour), respiratory_rate_bpm=22, spo2_percent=95,
            on_oxygen=False, systolic_mmhg=systolic, diastolic_mmhg=79, heart_rate_bpm=96, consciousness="alert",
            temperature_c=38.4,
        )
        for hour, systolic in enumerate([128, 141, 119, 135, 122, 138])
    ]  # fmt: skip
    window = timedelta(hours=24)
    assessment = risk.assess(readings, spo2_scale=1, window=window, variability_window=window)
    return {"patient_id": EXAMPLE_ID, **assessment.model_dump(mode="json")}


class RiskAssessmentOut(RiskAssessment):
    model_config = ConfigDict(json_schema_extra=lambda schema: schema.update(examples=[_assessment_example()]))

    patient_id: uuid.UUID


def _chart_example() -> dict[str, Any]:
    """Two real rows: what the service sends for two readings an hour apart."""
    readings = [
        risk.Reading(measured_at=EXAMPLE_AT, id="1", respiratory_rate_bpm=22, spo2_percent=95, on_oxygen=False,
                     systolic_mmhg=128, diastolic_mmhg=79, heart_rate_bpm=96, consciousness="alert",
                     temperature_c=38.4),
        risk.Reading(measured_at=EXAMPLE_AT + timedelta(hours=1), id="2", heart_rate_bpm=112),
    ]  # fmt: skip
    rows = chart.rows(readings, since=EXAMPLE_AT, spo2_scale=1, window=timedelta(hours=24))
    return {"patient_id": EXAMPLE_ID, "spo2_scale": 1, "since": EXAMPLE_AT.isoformat(),
            "rows": [row.model_dump(mode="json") for row in rows]}  # fmt: skip


class ObservationChart(BaseModel):
    """A patient's readings of the last hours, laid out as the RCP's NEWS2 chart (doc/ward.md)."""

    model_config = ConfigDict(json_schema_extra=lambda schema: schema.update(examples=[_chart_example()]))

    patient_id: uuid.UUID
    spo2_scale: Literal[1, 2]
    since: datetime
    rows: list[ChartRow] = Field(description="Oldest first.")


class ChartQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    hours: int = Field(default=72, ge=1, le=168, description="How far back the chart goes.")


class IdentifierQuery(BaseModel):
    """MRNs whose patients' ids the measurement service needs: HL7 v2 names a patient by MRN."""

    model_config = ConfigDict(extra="forbid")

    mrns: list[Annotated[str, Text(64)]] = Field(min_length=1, max_length=100)


class PatientIdentifier(BaseModel):
    mrn: str
    id: uuid.UUID


class IdentifierMatches(BaseModel):
    """The patients found, by MRN; an MRN no patient has is left out."""

    patients: list[PatientIdentifier]
