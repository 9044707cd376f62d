"""One trace spans the work a reading causes: the measurement API's request (FastAPI's span, from
the client's traceparent), the relay's publish, and the patient consumer's apply, each the child
of the one before, across three processes (the test stack writes each process's spans to a file)."""

import json
import uuid
from typing import Any

import httpx
from harness import eventually


def spans(stack, process: str, trace_id: str) -> list[dict[str, Any]]:
    path = stack.run_dir / "traces" / f"{process}.jsonl"
    found = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
    return [span for span in found if span["trace_id"] == trace_id]


def test_one_trace_spans_the_request_the_publish_and_the_apply(api: httpx.Client, stack) -> None:
    patient = api.post("/api/v1/patient", json={"first_name": "Span", "last_name": "Ner", "age": 40}).json()
    trace_id, client_span = uuid.uuid4().hex, uuid.uuid4().hex[:16]
    headers = {"traceparent": f"00-{trace_id}-{client_span}-01"}
    url = f"/api/v1/patient/{patient['id']}/measurements"
    assert api.post(url, json={"heart_rate_bpm": 81}, headers=headers).status_code == 201

    def named(process: str, name: str) -> list[dict[str, Any]]:
        return [span for span in spans(stack, process, trace_id) if span["name"] == name]

    server = eventually(lambda: [s for s in spans(stack, "measurement-api", trace_id) if s["kind"] == "SERVER"])
    publish = eventually(lambda: named("measurement-relay", "publish measurement.recorded"))
    apply = eventually(lambda: named("patient-consumer", "apply measurement.recorded"))
    assert server[0]["parent_id"] == client_span
    assert publish[0]["parent_id"] == server[0]["span_id"]
    assert apply[0]["parent_id"] == publish[0]["span_id"]
    assert (publish[0]["kind"], apply[0]["kind"]) == ("PRODUCER", "CONSUMER")
