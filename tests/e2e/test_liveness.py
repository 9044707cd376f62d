"""Relays and consumers have a liveness signal on their metrics port: /live answers 200 while
their loop turns, and 503 once it has not turned for the heartbeat's limit (a stuck loop)."""

import time

import httpx
import stack as stack_module
from harness import eventually, free_port

from painkiller_common.observability import metrics


def live(port: int) -> httpx.Response | None:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/live", timeout=5)
    except httpx.ConnectError:  # a worker of the stack not listening yet: `up` waits for the APIs only
        return None


def test_every_relay_and_consumer_of_the_stack_is_live(stack: stack_module.Stack) -> None:
    for name, port in stack.metrics_ports.items():
        if name.endswith(("relay", "consumer")):
            response = eventually(lambda port=port: live(port))
            assert (response.status_code, response.text) == (200, "ok\n"), name
            assert "painkiller_loop_heartbeat_age_seconds" in httpx.get(f"http://127.0.0.1:{port}/metrics").text


def test_a_loop_that_stops_turning_fails_liveness() -> None:
    heartbeat, port = metrics.Heartbeat(stale_after_s=0.3), free_port()
    metrics.serve(port, "127.0.0.1", heartbeat=heartbeat)
    heartbeat.beat()
    assert httpx.get(f"http://127.0.0.1:{port}/live", timeout=5).status_code == 200
    time.sleep(0.5)  # no beat: the loop is stuck
    stuck = httpx.get(f"http://127.0.0.1:{port}/live", timeout=5)
    assert (stuck.status_code, stuck.text) == (503, "stuck\n")
    heartbeat.beat()
    assert httpx.get(f"http://127.0.0.1:{port}/live", timeout=5).status_code == 200
