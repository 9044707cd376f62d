"""A patient's observation chart, as the RCP's NEWS2 chart lays it out: each reading with the
NEWS2 sub-score of each of its values, and the NEWS2 total and band as they stood once it was
taken (the newest value of each parameter within the window, as risk/scores.py rules). Pure
functions: readings in, rows out; the ward board draws them (doc/ward.md)."""

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Literal

from pydantic import BaseModel, Field

from patient_service.risk.scores import READING_VALUES, Band, Parameter, Reading, news2


class ChartRow(BaseModel):
    measured_at: datetime
    values: dict[str, float | int | bool | str] = Field(description="The reading's vitals, as stored.")
    sub_scores: dict[Parameter, int] = Field(description="The NEWS2 sub-score of each parameter it measured.")
    news2_total: int | None = Field(description="NEWS2 as it stood once this reading was taken.")
    band: Band | None
    complete: bool = Field(description="Whether that NEWS2 had all seven parameters.")


def rows(
    readings: Sequence[Reading], *, since: datetime, spo2_scale: Literal[1, 2], window: timedelta
) -> list[ChartRow]:
    """The chart's rows from `since` on, oldest first; `readings` may reach further back, for the
    NEWS2 standing at the first of them."""
    ordered = sorted(readings, key=lambda r: (r.measured_at, r.id))
    chart, first = [], 0  # ordered[first:index + 1]: the readings within the window of the one at `index`
    for index, reading in enumerate(ordered):
        while reading.measured_at - ordered[first].measured_at > window:
            first += 1
        if reading.measured_at < since:
            continue
        own = news2([reading], spo2_scale)
        standing = news2(ordered[first : index + 1], spo2_scale)
        chart.append(
            ChartRow(
                measured_at=reading.measured_at,
                values={name: value for name in READING_VALUES if (value := getattr(reading, name)) is not None},
                sub_scores={parameter: score for parameter, score in own.sub_scores.items() if score is not None},
                news2_total=standing.total,
                band=standing.band,
                complete=standing.complete,
            )
        )
    return chart
