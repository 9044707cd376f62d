"""Readings at the edges of the vital-sign ranges (painkiller_common.contracts.VITAL_RANGES)."""

from painkiller_common.contracts import VITAL_RANGES


def outside_ranges() -> list[tuple[str, float]]:
    """For each numeric vital, values just outside its range (contracts.VITAL_RANGES), each alone
    at fault: a systolic below 0 would need a diastolic lower still, out of range too."""
    values = []
    for vital, (low, high) in VITAL_RANGES.items():
        values.append((vital, high + 1))
        if vital != "systolic_mmhg":
            values.append((vital, low - 1 if low >= 1 else (low / 2 if low > 0 else -1)))
    return values


def with_its_pair(vital: str, value: float) -> dict[str, float]:
    """`vital` set to `value`, with the other half of a blood pressure where the pair needs one."""
    if vital == "systolic_mmhg":
        return {vital: value, "diastolic_mmhg": 80}
    if vital == "diastolic_mmhg":
        return {vital: value, "systolic_mmhg": 400}
    return {vital: value}
