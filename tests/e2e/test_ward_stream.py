"""A ward's live stream through NGINX (doc/ward.md): what its board hears, how fast, how it resumes,
who may listen."""

import time
import uuid
from datetime import UTC, datetime

import httpx
from event_streams import EventStream
from harness import bearer


def ward_patient(api: httpx.Client, ward: str, **fields: object) -> dict:
    body = {"first_name": "Iris", "last_name": "Ward", "age": 70, "location": {"ward": ward, "bed": "1"}, **fields}
    response = api.post("/api/v1/patient", json=body)
    assert response.status_code == 201, response.text
    return response.json()


def stream(stack, ward: str, **headers: str) -> EventStream:
    return EventStream(stack.url, f"/api/v1/patient/wards/{ward}/events", {**bearer(stack), **headers})


def new_ward() -> str:
    return f"W-{uuid.uuid4().hex[:8]}"


def test_a_reading_reaches_its_wards_stream_within_two_seconds(stack, api: httpx.Client) -> None:
    ward = new_ward()
    patient = ward_patient(api, ward)
    with stream(stack, ward) as events:
        assert (events.status, events.content_type) == (200, "text/event-stream; charset=utf-8")
        reading = {"heart_rate_bpm": 88, "measured_at": datetime.now(UTC).isoformat()}
        assert api.post(f"/api/v1/patient/{patient['id']}/measurements", json=reading).status_code == 201
        committed = time.monotonic()
        heard = events.until(lambda e: e.kind == "reading", timeout=2)
        assert time.monotonic() - committed < 2
        assert heard.data == {"patient_id": patient["id"], "kind": "reading"}


def test_admissions_moves_and_departures_show_on_each_ward(stack, api: httpx.Client) -> None:
    first, second = new_ward(), new_ward()
    with stream(stack, first) as on_first, stream(stack, second) as on_second:
        patient = ward_patient(api, first)
        assert on_first.next().data == {"patient_id": patient["id"], "kind": "arrived"}
        api.patch(f"/api/v1/patient/{patient['id']}", json={"location": {"ward": second, "bed": "7"}})
        assert on_first.next().data == {"patient_id": patient["id"], "kind": "left"}
        assert on_second.next().data == {"patient_id": patient["id"], "kind": "arrived"}
        api.patch(f"/api/v1/patient/{patient['id']}", json={"last_name": "Ward-Smith"})
        assert on_second.next().kind == "updated"
        assert api.delete(f"/api/v1/patient/{patient['id']}").status_code == 204
        assert on_second.next().data == {"patient_id": patient["id"], "kind": "removed"}
        assert on_first.events.empty()  # nothing of the other ward's


def test_last_event_id_resumes_after_the_event_it_names(stack, api: httpx.Client) -> None:
    ward = new_ward()
    with stream(stack, ward) as events:
        patients = [ward_patient(api, ward, last_name=f"Bed{n}") for n in range(3)]
        heard = [events.next() for _ in patients]
    assert [e.data["patient_id"] for e in heard] == [p["id"] for p in patients]
    with stream(stack, ward, **{"Last-Event-ID": heard[0].id}) as resumed:
        again = [resumed.next(), resumed.next()]
        assert [e.id for e in again] == [e.id for e in heard[1:]]
        time.sleep(1)
        assert resumed.events.empty()  # no repeat of what was named, nor of anything after it


def test_a_quiet_stream_sends_heartbeats_and_is_no_request_latency(stack) -> None:
    with stream(stack, new_ward()) as events:
        deadline = time.monotonic() + 5  # the test stacks beat every second (harness.py)
        while events.comments == 0 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert events.comments >= 1
    # A stream lasts as long as its reader: counted as a request's duration, it would set off the
    # latency alerts (observability/metrics.py).
    metrics = httpx.get(f"http://127.0.0.1:{stack.metrics_ports['patient-api']}/metrics").text
    assert "/wards/" not in metrics


def test_only_clinicians_may_listen(stack, api: httpx.Client) -> None:
    patient = ward_patient(api, new_ward())
    own = bearer(stack, scope="patient/*.cruds", patient=patient["id"])
    refused = api.get(f"/api/v1/patient/wards/{patient['location']['ward']}/events", headers=own)
    assert refused.status_code == 403
    assert refused.headers["content-type"] == "application/problem+json"


def test_a_malformed_last_event_id_is_a_422_naming_it(stack, api: httpx.Client) -> None:
    response = api.get("/api/v1/patient/wards/4B/events", headers={"Last-Event-ID": "yesterday"})
    assert response.status_code == 422
    assert "last-event-id" in response.text.lower()
