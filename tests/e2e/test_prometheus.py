"""A real Prometheus (Debian's package, as `make observe` runs it) scrapes the test stack from the
targets file `up` wrote, with the repository's rules; PromQL shows every process up and the
request and event-lag figures moving with the traffic this test drives."""

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import stack as stack_module
from harness import eventually, free_port

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def prometheus(stack: stack_module.Stack) -> Iterator[str]:
    port = free_port()
    process = stack_module.start_prometheus(stack, port=port, scrape_interval="1s")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        stack_module.stop([process])


def query(prometheus: str, promql: str) -> list[dict[str, Any]]:
    answer = httpx.get(f"{prometheus}/api/v1/query", params={"query": promql}, timeout=5).json()
    assert answer["status"] == "success", answer
    return answer["data"]["result"]


def value(prometheus: str, promql: str) -> float:
    result = query(prometheus, promql)
    return float(result[0]["value"][1]) if result else 0.0


def test_every_process_is_up_and_requests_and_event_lag_are_measured(api: httpx.Client, prometheus: str) -> None:
    every_kind = {*stack_module.PROCESSES, "supervisor"}  # the supervisor's listener counts restarts
    eventually(lambda: {r["metric"]["job"] for r in query(prometheus, "up == 1")} == every_kind or None, timeout_s=30)
    running = {r["metric"]["process"] for r in query(prometheus, "painkiller_process_running == 1")}
    assert running == {*stack_module.instances(1), "nginx"}

    patient = api.post("/api/v1/patient", json={"first_name": "Prom", "last_name": "Etheus", "age": 40}).json()
    for pulse in (71, 72, 73):
        assert api.post(f"/api/v1/patient/{patient['id']}/measurements", json={"heart_rate_bpm": pulse}).is_success
    eventually(lambda: api.get(f"/api/v1/patient/{patient['id']}").json()["latest_vitals"].get("heart_rate_bpm"))

    route = "/api/v1/patient/{patient_id}/measurements"
    posted = f'sum(http_server_request_duration_seconds_count{{job="measurement-api",route="{route}",status="201"}})'
    lag = 'sum(painkiller_event_lag_seconds_count{job="patient-consumer",type="measurement.recorded"})'
    published = 'sum(painkiller_events_published_total{job="measurement-relay",type="measurement.recorded"})'
    for promql in (posted, lag, published):
        eventually(lambda promql=promql: value(prometheus, promql) >= 3 or None, timeout_s=30)
    assert query(prometheus, 'painkiller_outbox_pending{job="measurement-relay"}')
    assert query(prometheus, 'painkiller_db_pool_connections_in_use{job="patient-api",pool="async"}')

    dashboard = json.loads((ROOT / "observability" / "grafana" / "dashboards" / "painkiller.json").read_text())
    for panel in dashboard["panels"]:  # every query of the Grafana dashboard is valid PromQL here
        query(prometheus, panel["targets"][0]["expr"])

    rules = httpx.get(f"{prometheus}/api/v1/rules", timeout=5).json()["data"]["groups"]
    alerts = {rule["name"] for group in rules for rule in group["rules"] if rule["type"] == "alerting"}
    assert {"PainkillerOutboxBacklogGrowing", "PainkillerEventLagHigh", "PainkillerEventDeadLettered"} <= alerts
    assert {"PainkillerProcessRestarting", "PainkillerProcessNotRunning", "PainkillerWorkerReconnecting"} <= alerts
