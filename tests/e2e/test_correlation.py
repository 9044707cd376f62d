"""One id follows one piece of work: a reading posted with a chosen X-Request-ID is found, with
that id, in the JSON log lines of the measurement API, its relay, the patient consumer that
applied the event, and the patient API the measurement service asked about the patient."""

import json
import uuid
from pathlib import Path
from typing import Any

import httpx
from harness import eventually


def lines(log: Path) -> list[dict[str, Any]]:
    """Every line of a process's log, each a JSON object (a line that is not fails the test)."""
    return [json.loads(line) for line in log.read_text().splitlines() if line.strip()]


def test_a_request_id_follows_a_reading_through_api_relay_and_consumer(api: httpx.Client, stack) -> None:
    patient = api.post("/api/v1/patient", json={"first_name": "Trace", "last_name": "Able", "age": 40}).json()
    request_id = f"follow-{uuid.uuid4().hex[:12]}"
    traceparent = f"00-{uuid.uuid4().hex}-{uuid.uuid4().hex[:16]}-01"
    headers = {"X-Request-ID": request_id, "traceparent": traceparent}
    posted = api.post(f"/api/v1/patient/{patient['id']}/measurements", json={"heart_rate_bpm": 77}, headers=headers)
    assert posted.status_code == 201

    def lines_with_the_id(process: str) -> list[dict[str, Any]]:
        return [line for line in lines(stack.run_dir / f"{process}.log") if line.get("request_id") == request_id]

    for process in ("measurement-api", "measurement-relay", "patient-consumer"):
        found = eventually(lambda process=process: lines_with_the_id(process), timeout_s=20)
        assert {line["trace_id"] for line in found} == {traceparent.split("-")[1]}, process
        assert {line["process_kind"] for line in found} == {process.split("-")[1]}
    applied = [line for line in lines_with_the_id("patient-consumer") if line["message"].startswith("applied event")]
    assert applied and applied[0]["event_id"], applied
    assert {"time", "level", "service", "logger", "message"} <= applied[0].keys()
