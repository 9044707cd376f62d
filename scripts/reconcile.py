"""Bring the two services back into agreement, from each one's source of truth; or replay events.

    python scripts/reconcile.py                 report and repair; prints what it changed, as JSON
    python scripts/reconcile.py replay --service measurement --since 2026-12-03T10:00Z [--until ...]

The services keep copies of each other's facts, fed by events: the measurement service a replica
of which patients exist (`known_patients`), the patient service a copy of the readings
(`vital_readings`) and, from them, each patient's `latest_vitals` and NEWS2. Restore one database to
an earlier point and the copies disagree with their sources: events the restored side published
after that point are applied on the other side but gone from the source. Events it had not
published yet are published again by its relay and ignored as duplicates by the consumer
(`processed_events`), so nothing is applied twice. This script repairs what events cannot:

- `known_patients` is made to match the patient service's patients (added, versions and MRNs
  updated, and a tombstone for a patient the patient service no longer has);
- `vital_readings` is made to match the measurement service's readings (missing ones stored,
  ones the measurement service no longer has kept as tombstones), then every patient whose
  `latest_vitals` differs from their stored readings is reassessed (NEWS2, its events);
- readings whose patient the patient service no longer has are reported, never deleted: clinical
  data is not thrown away by a script; a clinician decides (doc/operations.md).

Run by an operator (`make reconcile`), so it may read both databases, which no service does.
It is idempotent: run twice, the second run changes nothing. Replay marks a service's retained
outbox events (7 days) of a time range unpublished, for its relay to send again after a broker lost
its queues; consumers ignore the ones they had applied.
"""

import argparse
import json
import os
import sys
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, text

sys.path.insert(0, str(Path(__file__).resolve().parent))

import stack  # noqa: E402
from backups import moment  # noqa: E402

from painkiller_common.contracts import VITALS, MeasurementRecord  # noqa: E402
from painkiller_common.db import make_session_factory  # noqa: E402
from painkiller_common.db.migrations import OUTBOX_CHANNEL  # noqa: E402
from patient_service.config import Settings  # noqa: E402
from patient_service.models import EVENT_TABLES  # noqa: E402
from patient_service.risk.assessment import reassess_many  # noqa: E402
from patient_service.risk.latest_vitals import recompute  # noqa: E402
from patient_service.risk.measurement_events import store_readings  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
PATIENTS_AT_ONCE = 100  # per transaction: bounded memory, short row locks
READING_COLUMNS = ", ".join(["id", "patient_id", "measured_at", "recorded_at", "source", *VITALS])


@dataclass
class Report:
    known_patients_added: int = 0
    known_patients_updated: int = 0
    known_patients_tombstoned: int = 0
    readings_copied: int = 0
    readings_tombstoned: int = 0
    patients_reassessed: int = 0
    # The gap no event can close: readings of patients the patient service no longer has.
    readings_without_patient: int = 0
    patients_missing: list[str] | None = None


def reconcile(patient_db: Engine, measurement_db: Engine, settings: Settings) -> Report:
    report = Report()
    replica(patient_db, measurement_db, report)
    readings(patient_db, measurement_db, report)
    reassess(patient_db, settings, report)
    return report


def replica(patient_db: Engine, measurement_db: Engine, report: Report) -> None:
    """`known_patients` as the patient service's `patients` say.

    The copy is read before its source: with the stack running, a patient created in between is
    then only in the source (and added, as its event would), never only in the copy (which
    would tombstone a patient who exists)."""
    with measurement_db.begin() as conn:
        known = {
            row.patient_id: (row.version, row.mrn, row.deleted)
            for row in conn.execute(text("SELECT patient_id, version, mrn, deleted FROM known_patients"))
        }
        with patient_db.connect() as source:
            rows = source.execute(text("SELECT id, version, mrn FROM patients"))
            truth = {row.id: (row.version, row.mrn) for row in rows}
        upserts = [
            {"id": pid, "version": version, "mrn": mrn}
            for pid, (version, mrn) in truth.items()
            if known.get(pid) != (version, mrn, False)
        ]
        report.known_patients_added = sum(pid not in known for pid in (u["id"] for u in upserts))
        report.known_patients_updated = len(upserts) - report.known_patients_added
        if upserts:
            conn.execute(
                text(
                    "INSERT INTO known_patients (patient_id, version, mrn, deleted) VALUES (:id, :version, :mrn, false)"
                    " ON CONFLICT (patient_id) DO UPDATE"
                    " SET version = excluded.version, mrn = excluded.mrn, deleted = false"
                ),
                upserts,
            )
        gone = [pid for pid, (_, _, deleted) in known.items() if pid not in truth and not deleted]
        if gone:
            conn.execute(
                text("UPDATE known_patients SET deleted = true, mrn = NULL WHERE patient_id = ANY(:ids)"), {"ids": gone}
            )
        report.known_patients_tombstoned = len(gone)
        # Readings of patients the patient service does not have (distinct ids: by the index).
        readers = {row[0] for row in conn.execute(text("SELECT DISTINCT patient_id FROM measurements"))}
        orphans = sorted(readers - truth.keys())
        report.readings_without_patient = conn.execute(
            text("SELECT count(*) FROM measurements WHERE patient_id = ANY(:ids)"), {"ids": orphans}
        ).scalar_one()
    report.patients_missing = [str(pid) for pid in orphans]


def readings(patient_db: Engine, measurement_db: Engine, report: Report) -> None:
    """`vital_readings` as the measurement service's `measurements` say, a few patients at a time:
    memory stays bounded and no patient is locked for long."""
    for chunk in chunks(patient_ids(patient_db)):
        _readings_of(chunk, patient_db, measurement_db, report)


def patient_ids(patient_db: Engine) -> list[uuid.UUID]:
    with patient_db.connect() as conn:
        return list(conn.execute(text("SELECT id FROM patients ORDER BY id")).scalars())


def chunks(patients: list[uuid.UUID]) -> Iterator[list[uuid.UUID]]:
    for start in range(0, len(patients), PATIENTS_AT_ONCE):
        yield patients[start : start + PATIENTS_AT_ONCE]


def _readings_of(patients: list[uuid.UUID], patient_db: Engine, measurement_db: Engine, report: Report) -> None:
    with make_session_factory(patient_db, EVENT_TABLES.outbox)() as session, session.begin():
        # The copy before its source, as in `replica`: a reading recorded in between is only in
        # the source (copied, as its event would be), never only in the copy (tombstoned wrongly).
        copied = {
            row.measurement_id: row.deleted
            for row in session.execute(
                text("SELECT measurement_id, deleted FROM vital_readings WHERE patient_id = ANY(:p)"), {"p": patients}
            )
        }
        with measurement_db.connect() as conn:
            truth: set[uuid.UUID] = set(
                conn.execute(text("SELECT id FROM measurements WHERE patient_id = ANY(:p)"), {"p": patients}).scalars()
            )
        # A tombstone for a reading the measurement service has: the restore brought it back.
        revived = [mid for mid, deleted in copied.items() if deleted and mid in truth]
        if revived:
            session.execute(text("DELETE FROM vital_readings WHERE measurement_id = ANY(:ids)"), {"ids": revived})
        missing = [mid for mid in truth if mid not in copied or mid in revived]
        if missing:
            with measurement_db.connect() as conn:
                rows = conn.execute(
                    text(f"SELECT {READING_COLUMNS} FROM measurements WHERE id = ANY(:ids)"), {"ids": missing}
                )
                stored = store_readings(session, [_record(row) for row in rows])
            report.readings_copied += sum(len(batch) for batch in stored.values())
        extra = [mid for mid, deleted in copied.items() if not deleted and mid not in truth]
        if extra:
            session.execute(
                text("UPDATE vital_readings SET deleted = true WHERE measurement_id = ANY(:ids)"), {"ids": extra}
            )
        report.readings_tombstoned += len(extra)


def _record(row: Any) -> MeasurementRecord:
    return MeasurementRecord.model_validate(
        {"id": row.id, "patient_id": row.patient_id, "measured_at": row.measured_at}
        | {"recorded_at": row.recorded_at, "source": row.source}
        | {field: getattr(row, field) for field in VITALS}
    )


def reassess(patient_db: Engine, settings: Settings, report: Report) -> None:
    """Every patient whose `latest_vitals` is not what their stored readings give: set, and NEWS2
    reassessed (with its events, as when a reading arrives)."""
    for chunk in chunks(patient_ids(patient_db)):
        with make_session_factory(patient_db, EVENT_TABLES.outbox)() as session, session.begin():
            locked = session.execute(
                text("SELECT id, latest_vitals FROM patients WHERE id = ANY(:p) ORDER BY id FOR UPDATE"),
                {"p": chunk},
            ).all()
            stale = []
            for row in locked:
                latest = recompute(session, row.id)
                if latest != row.latest_vitals:
                    session.execute(
                        text("UPDATE patients SET latest_vitals = CAST(:v AS jsonb) WHERE id = :id"),
                        {"v": json.dumps(latest), "id": row.id},
                    )
                    stale.append(row.id)
            if stale:
                reassess_many(session, stale, {}, settings)
            report.patients_reassessed += len(stale)


def replay(engine: Engine, since: datetime, until: datetime | None) -> int:
    """Mark the outbox's retained events created in [since, until) unpublished: the relay sends
    them again. How many."""
    with engine.begin() as conn:
        result = conn.execute(
            text(
                "UPDATE outbox SET published_at = NULL WHERE published_at IS NOT NULL"
                " AND created_at >= :since AND (CAST(:until AS timestamptz) IS NULL OR created_at < :until)"
            ),
            {"since": since, "until": until},
        )
        conn.execute(text(f"NOTIFY {OUTBOX_CHANNEL}"))  # the relays look now, not at their next poll
    return int(result.rowcount)


def database_urls() -> dict[str, str]:
    """Each service's runtime database URL: from the environment, else `make up`'s (.run)."""
    if all(os.environ.get(f"{s}_DATABASE_URL") for s in ("PATIENT", "MEASUREMENT")):
        return {s: os.environ[f"{s}_DATABASE_URL"] for s in ("PATIENT", "MEASUREMENT")}
    env = stack.dev_database_env(ROOT / ".run")
    return {s: os.environ.get(f"{s}_DATABASE_URL") or env[f"{s}_DATABASE_URL"] for s in ("PATIENT", "MEASUREMENT")}


def main(argv: Iterable[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", nargs="?", choices=["reconcile", "replay"], default="reconcile")
    parser.add_argument("--service", choices=["patient", "measurement"], help="whose outbox to replay")
    parser.add_argument("--since", type=moment, help="replay events created from this time (RFC 3339)")
    parser.add_argument("--until", type=moment, help="...until this one (default: now)")
    args = parser.parse_args(list(argv) if argv is not None else None)
    urls = database_urls()
    engines = {service: create_engine(url) for service, url in urls.items()}
    try:
        if args.command == "replay":
            if not (args.service and args.since):
                parser.error("replay needs --service and --since")
            count = replay(engines[args.service.upper()], args.since, args.until)
            print(json.dumps({"replayed": count, "service": args.service}))
            return
        settings = Settings(database_url=urls["PATIENT"])
        report = reconcile(engines["PATIENT"], engines["MEASUREMENT"], settings)
        print(json.dumps(asdict(report), indent=2))
    finally:
        for engine in engines.values():
            engine.dispose()


if __name__ == "__main__":
    main()
