"""The Jepsen-style tally of a fault test: what happened to every event a producer committed."""

import re
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

from harness import test_databases
from sqlalchemy import create_engine, text

FAULT_DATABASES = test_databases("faults")

# Which consumer applies which producer's events.
CONSUMER_OF = {"patient_service": "measurement-consumer", "measurement_service": "patient-consumer"}
DATABASE_OF = {"patient_service": "PATIENT_DATABASE_URL", "measurement_service": "MEASUREMENT_DATABASE_URL"}

_APPLIED = re.compile(r"applied event \S+ ([0-9a-f-]{36})")
_DUPLICATE = re.compile(r"duplicate event \S+ ([0-9a-f-]{36}) ignored")

FIGURES: list[tuple[str, "Tally"]] = []


@dataclass
class Tally:
    attempted: int
    committed: int
    events: int
    delivered: int
    applied: int
    lost: int
    duplicates_delivered: int
    applied_twice: int


def outbox_event_ids(producer: str) -> set[str]:
    engine = create_engine(FAULT_DATABASES[DATABASE_OF[producer]])
    try:
        with engine.connect() as conn:
            return {str(i) for i in conn.execute(text("SELECT event_id FROM outbox")).scalars()}
    finally:
        engine.dispose()


def processed_event_ids(producer: str) -> set[str]:
    """Events the consumer of `producer`'s events has applied: its `processed_events`, written in
    the same transaction as each event's effect."""
    consumer_db = next(var for service, var in DATABASE_OF.items() if service != producer)
    engine = create_engine(FAULT_DATABASES[consumer_db])
    try:
        with engine.connect() as conn:
            return {str(i) for i in conn.execute(text("SELECT event_id FROM processed_events")).scalars()}
    finally:
        engine.dispose()


def tally(run_dir: Path, producer: str, *, attempted: int, committed: int, since_ids: set[str] = frozenset()) -> Tally:
    """Count, for the events `producer` committed (less `since_ids`), what its consumer did.

    Applied and lost are read from the consumer's database; deliveries and duplicates, which leave
    no state behind, from its log (one line per delivery)."""
    expected = outbox_event_ids(producer) - set(since_ids)
    applied_ids = processed_event_ids(producer) & expected
    # Every replica's log: "patient-consumer.log", "patient-consumer-2.log"...
    log = "".join(path.read_text() for path in run_dir.glob(f"{CONSUMER_OF[producer]}*.log"))
    applied = Counter(i for i in _APPLIED.findall(log) if i in expected)
    duplicates = Counter(i for i in _DUPLICATE.findall(log) if i in expected)
    return Tally(
        attempted=attempted,
        committed=committed,
        events=len(expected),
        delivered=sum(applied.values()) + sum(duplicates.values()),
        applied=len(applied_ids),
        lost=len(expected - applied_ids),
        duplicates_delivered=sum(duplicates.values()),
        applied_twice=sum(1 for n in applied.values() if n > 1),
    )


def record_figures(name: str, figures: Tally) -> None:
    FIGURES.append((name, figures))
    print(name, asdict(figures))
