"""Schemathesis, run as a client developer would: every check (`--checks all`), every phase
(examples, coverage, fuzzing, stateful), on each OpenAPI document, through NGINX with a
clinician's token. Any failure (a 5xx, a valid request refused, an invalid one accepted, an
answer or header the document does not declare, a created resource that cannot be found...)
fails the test with schemathesis' own report.

The rules the documents can only state in words (dates against today, diastolic below
systolic) reach schemathesis through fuzz_hooks.py. The measurement document is run against a
patient that exists, so that its writes get past the 404 and are checked too.
"""

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from harness import bearer

HERE = Path(__file__).parent
SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")
PHASES = "examples,coverage,fuzzing,stateful"
EXAMPLES = os.environ.get("FUZZ_EXAMPLES", "30")


def schemathesis_run(stack, document: str, config: Path) -> subprocess.CompletedProcess[str]:
    token = bearer(stack)["Authorization"]
    command = [
        str(SCHEMATHESIS), "--config-file", str(config), "run", stack.url + document,
        "--url", stack.url, "--header", f"Authorization: {token}",
        "--checks", "all", "--phases", PHASES, "--max-examples", EXAMPLES, "--workers", "1",
    ]  # fmt: skip
    env = {**os.environ, "SCHEMATHESIS_HOOKS": "fuzz_hooks", "PYTHONPATH": str(HERE), "NO_COLOR": "1"}
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=600, check=False)


def summary(output: str) -> str:
    """Schemathesis' closing lines: phases, failures, cases generated."""
    return output[output.rfind("SUMMARY") - 40 :]


@pytest.mark.parametrize("document", ["/api/v1/patient/openapi.json", "/api/v1/measures/openapi.json"])
def test_schemathesis_every_check_every_phase_finds_nothing(
    stack, api: httpx.Client, tmp_path: Path, document: str
) -> None:
    patient = api.post("/api/v1/patient", json={"first_name": "Fuzz", "last_name": "Target", "age": 50}).json()
    config = tmp_path / "schemathesis.toml"
    if "measures" in document:
        config.write_text(f'[parameters]\n"path.patient_id" = "{patient["id"]}"\n')
    else:
        config.write_text("")
    run = schemathesis_run(stack, document, config)
    print(summary(run.stdout))  # the note quotes it; `pytest -s` shows it
    assert run.returncode == 0, run.stdout[-20000:] + run.stderr[-2000:]
