"""An API run with several uvicorn workers still serves one /metrics that counts every request:
prometheus-client's multiprocess mode, the figures added up by uvicorn's supervisor."""

import re
import subprocess
import sys

import httpx
import stack as stack_module
from harness import eventually, free_port


def test_two_workers_serve_one_metrics_endpoint_that_counts_both(stack: stack_module.Stack) -> None:
    port, metrics_port = free_port(), free_port()
    env = {**stack.process_env("patient-api"), "PATIENT_PORT": str(port), "PATIENT_WORKERS": "2",
           "PATIENT_METRICS_PORT": str(metrics_port)}  # fmt: skip
    log = (stack.run_dir / "patient-api-workers.log").open("wb")
    api = subprocess.Popen([sys.executable, "-m", "patient_service", "api"], env=env, stdout=log, stderr=log)
    try:
        stack_module.wait_ready(f"http://127.0.0.1:{port}/api/v1/patient/health/live", process=api)
        log_path = stack.run_dir / "patient-api-workers.log"

        def started_workers() -> set[str] | None:
            """Both workers up (the first answering does not mean the second has started)."""
            started = set(re.findall(r"Started server process \[(\d+)\]", log_path.read_text()))
            return started if len(started) == 2 else None

        # Both workers started, and logged (JSON) through the logging each set up for itself.
        assert len(eventually(started_workers, timeout_s=30)) == 2
        with httpx.Client(base_url=f"http://127.0.0.1:{port}") as client:  # new connections: both workers serve
            for _ in range(40):
                assert client.get("/api/v1/patient/health/live", headers={"Connection": "close"}).status_code == 200

        def live_requests() -> float | None:
            text = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).text
            pattern = r'http_server_request_duration_seconds_count\{method="GET",route="/api/v1/patient/health/live",status="200"\} (\S+)'  # noqa: E501
            counts = [float(found) for found in re.findall(pattern, text)]
            return sum(counts) if counts and sum(counts) >= 40 else None

        assert eventually(live_requests) >= 40
    finally:
        stack_module.stop([api])
