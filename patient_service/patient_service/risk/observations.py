"""When a patient's next observations are due: the RCP's minimum monitoring frequency for the
NEWS2 of the latest complete set (NEWS2 report, 2017, table 3; doc/risk.md):

| NEWS2                                  | minimum frequency      | level       |
|----------------------------------------|------------------------|-------------|
| 0                                      | 12-hourly              | `zero`      |
| 1-4                                    | 4-6-hourly (4 here)    | `low`       |
| 3 in one parameter, or 5-6             | hourly                 | `medium`    |
| 7 or more                              | continuous (15 min)    | `high`      |

A ward may observe more often (`PATIENT_WARD_OBSERVATION_MINUTES`). Pure functions: the clock
is an argument, so the rules are tested at each boundary with a frozen one.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from patient_service.risk.scores import Band

Level = Literal["zero", "low", "medium", "high"]
LEVELS: tuple[Level, ...] = ("zero", "low", "medium", "high")
# Minutes between observations at each level; "continuous" monitoring is shown as every 15 minutes.
RCP_MINUTES: dict[Level, int] = {"zero": 12 * 60, "low": 4 * 60, "medium": 60, "high": 15}


def level_of(news2_total: int, band: Band) -> Level:
    """The RCP's clinical risk for a complete set's score: its band, with a score of 0 apart."""
    if band in ("medium", "low_medium"):  # a single 3 ranks with 5-6
        return "medium"
    if band == "high":
        return "high"
    return "zero" if news2_total == 0 else "low"


@dataclass(frozen=True)
class Schedule:
    """Minutes between observations per level, the RCP's unless a ward says otherwise."""

    default: dict[Level, int]
    wards: dict[str, dict[Level, int]]

    def minutes(self, ward: str | None, level: Level) -> int:
        return self.wards.get(ward or "", {}).get(level, self.default[level])


@dataclass(frozen=True)
class LatestSet:
    """What the schedule needs of a patient: their NEWS2, whether it is complete, when its newest
    reading was measured; when they were registered, and whether they have been discharged."""

    news2_total: int | None
    band: Band | None
    complete: bool
    based_on: datetime | None
    registered_at: datetime
    discharged: bool
    ward: str | None


@dataclass(frozen=True)
class Due:
    at: datetime | None  # None: nothing due (discharged)
    overdue: bool


def next_observation(latest: LatestSet, schedule: Schedule, now: datetime) -> Due:
    """When the next set is due and whether that time has passed. Without a complete set a full
    one has been due since the patient was registered; a discharged patient is not observed."""
    if latest.discharged:
        return Due(None, False)
    if not latest.complete or latest.based_on is None or latest.news2_total is None or latest.band is None:
        at = latest.registered_at
    else:
        minutes = schedule.minutes(latest.ward, level_of(latest.news2_total, latest.band))
        at = latest.based_on + timedelta(minutes=minutes)
    return Due(at, now > at)
