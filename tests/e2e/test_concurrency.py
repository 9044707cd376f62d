"""The guarantees under real concurrency, through NGINX, the APIs, the relays and the consumers:
what must stay true however requests interleave, whatever the write path (doc/performance.md)."""

import threading
import uuid
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import httpx
from harness import E2E_DATABASES, eventually
from sqlalchemy import create_engine, text

THREADS = 6


def readings_stored(patient_id: str) -> int:
    engine = create_engine(E2E_DATABASES["MEASUREMENT_MIGRATION_DATABASE_URL"])
    try:
        with engine.connect() as conn:
            return conn.execute(
                text("SELECT count(*) FROM measurements WHERE patient_id = :p"), {"p": patient_id}
            ).scalar_one()
    finally:
        engine.dispose()


def in_threads(work: Callable[[int], None], threads: int = THREADS) -> None:
    """Run `work(i)` in `threads` threads that start together; re-raise the first failure."""
    start, failures = threading.Barrier(threads), []

    def run(i: int) -> None:
        try:
            start.wait()
            work(i)
        except BaseException as exc:  # reported below, in the test's thread
            failures.append(exc)

    workers = [threading.Thread(target=run, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
    assert not failures, failures[0]


def new_patient(api: httpx.Client) -> str:
    created = api.post("/api/v1/patient", json={"first_name": "Con", "last_name": "Current", "age": 70})
    assert created.status_code == 201
    patient_id = created.json()["id"]
    # Once the measurement service knows the patient from its events, posts take the local path.
    posted = api.post(f"/api/v1/patient/{patient_id}/measurements", json={"heart_rate_bpm": 70})
    assert posted.status_code == 201
    return patient_id


def test_no_reading_outlives_a_patient_deleted_while_readings_arrive(api: httpx.Client) -> None:
    patient_id = new_patient(api)
    answers: list[tuple[int, str | None]] = []
    deleted = threading.Event()

    def post_until_refused(i: int) -> None:
        with httpx.Client(base_url=str(api.base_url), headers=api.headers, timeout=10) as client:
            for n in range(200):
                body = {"heart_rate_bpm": 60 + n % 40, "source": f"thread-{i}-{n}"}
                response = client.post(f"/api/v1/patient/{patient_id}/measurements", json=body)
                assert response.status_code in (201, 404), response.text
                answers.append((response.status_code, response.json().get("id")))
                if n == 5 and i == 0:
                    assert api.delete(f"/api/v1/patient/{patient_id}").status_code == 204
                    deleted.set()
                if response.status_code == 404 and deleted.is_set():
                    return

    in_threads(post_until_refused)
    assert Counter(status for status, _ in answers)[201] >= THREADS  # the race really happened
    eventually(lambda: readings_stored(patient_id) == 0, timeout_s=30)
    for status, reading_id in answers:
        if status == 201:
            assert api.get(f"/api/v1/measures/{reading_id}").status_code == 404
    assert api.post(f"/api/v1/patient/{patient_id}/measurements", json={"heart_rate_bpm": 80}).status_code == 404
    assert readings_stored(patient_id) == 0


def test_one_idempotency_key_sent_at_once_stores_one_reading(api: httpx.Client) -> None:
    patient_id = new_patient(api)
    key, body = f"same-{uuid.uuid4()}", {"spo2_percent": 94, "source": "retrying-device"}
    answers: list[httpx.Response] = []

    def post(i: int) -> None:
        with httpx.Client(base_url=str(api.base_url), headers=api.headers, timeout=10) as client:
            answers.append(
                client.post(f"/api/v1/patient/{patient_id}/measurements", json=body, headers={"Idempotency-Key": key})
            )

    in_threads(post)
    assert [r.status_code for r in answers] == [201] * THREADS
    assert len({r.json()["id"] for r in answers}) == 1
    assert sum(r.headers.get("idempotent-replayed") == "true" for r in answers) == THREADS - 1
    assert readings_stored(patient_id) == 2  # the warm-up reading and this one


def test_one_key_with_different_bodies_at_once_is_one_201_and_409s(api: httpx.Client) -> None:
    patient_id = new_patient(api)
    key = f"clash-{uuid.uuid4()}"
    statuses: list[int] = []

    def post(i: int) -> None:
        with httpx.Client(base_url=str(api.base_url), headers=api.headers, timeout=10) as client:
            body = {"heart_rate_bpm": 60 + i, "source": f"body-{i}"}
            url = f"/api/v1/patient/{patient_id}/measurements"
            statuses.append(client.post(url, json=body, headers={"Idempotency-Key": key}).status_code)

    in_threads(post)
    assert sorted(statuses) == [201] + [409] * (THREADS - 1)
    assert readings_stored(patient_id) == 2


def test_paging_while_readings_arrive_shows_each_reading_once(api: httpx.Client) -> None:
    patient_id = new_patient(api)
    url = f"/api/v1/patient/{patient_id}/measurements"
    now = datetime.now(UTC).replace(microsecond=0)
    for minutes in range(1, 31):
        at = (now - timedelta(minutes=minutes)).isoformat()
        assert api.post(url, json={"heart_rate_bpm": 70, "measured_at": at, "source": f"s{minutes}"}).status_code == 201
    existing = {m["id"] for m in api.get(url, params={"limit": 200}).json()["items"]}
    assert len(existing) == 31

    seen: list[str] = []
    cursor, page = None, 0
    while True:
        listed = api.get(url, params={"limit": 7, **({"cursor": cursor} if cursor else {})}).json()
        seen += [m["id"] for m in listed["items"]]
        if listed["items"]:  # between pages: newer, older, and at the very instant of the cursor row
            last = listed["items"][-1]["measured_at"]
            for at, tag in (
                (now.isoformat(), "newer"),
                ((now - timedelta(days=1)).isoformat(), "older"),
                (last, "tie"),
            ):
                body = {"heart_rate_bpm": 75, "measured_at": at, "source": f"{tag}-{page}"}
                assert api.post(url, json=body).status_code == 201
        cursor, page = listed["next_cursor"], page + 1
        if cursor is None:
            break
    counts = Counter(seen)
    assert all(counts[reading_id] == 1 for reading_id in existing)
    assert max(counts.values()) == 1
