"""A client generated from each OpenAPI document with openapi-python-client, as an integrator
would, drives the main path through NGINX: create a patient, post a reading and a batch, read
the patient with latest_vitals, page the readings, delete. A generator that fails or warns on a
document fails the test (the CSV import alone is skipped: the generator has no text/csv body)."""

import importlib
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest
from harness import bearer, eventually

GENERATOR = Path(sys.executable).with_name("openapi-python-client")
DOCUMENTS = {"patient_client": "/api/v1/patient/openapi.json", "measurement_client": "/api/v1/measures/openapi.json"}
KNOWN_WARNING = (
    "WARNING parsing POST /api/v1/patient/import within patients. Endpoint will not be generated.\n\n"
    "Unsupported content type text/csv"
)


def generate(document: Path, package: Path) -> None:
    # The generator formats its output with ruff, which it looks for on PATH.
    env = {**os.environ, "PATH": f"{GENERATOR.parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    run = subprocess.run(
        [str(GENERATOR), "generate", "--path", str(document), "--output-path", str(package), "--meta", "none"],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    output = run.stdout + run.stderr
    assert run.returncode == 0, output
    warnings = output.replace(KNOWN_WARNING, "")
    assert "WARNING" not in warnings and "Error" not in warnings, output


@pytest.fixture(scope="module")
def clients(stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, ModuleType]]:
    """Each document generated into a package of its own, importable for this module's tests."""
    root = tmp_path_factory.mktemp("generated")
    for package, path in DOCUMENTS.items():
        document = root / f"{package}.json"
        document.write_text(httpx.get(stack.url + path, timeout=10).text)
        generate(document, root / package)
    sys.path.insert(0, str(root))
    try:
        for package in DOCUMENTS:
            importlib.import_module(f"{package}.models")  # then `patient_client.models.PatientOut` resolves
        yield {package: sys.modules[package] for package in DOCUMENTS}
    finally:
        sys.path.remove(str(root))
        for name in [m for m in sys.modules if m.split(".")[0] in DOCUMENTS]:
            del sys.modules[name]


def api(package: str, name: str) -> Any:
    """An operation's module, by the operation id the document gives it."""
    tag = "patients" if package == "patient_client" else "measurements"
    return importlib.import_module(f"{package}.api.{tag}.{name}")


def test_a_generated_client_drives_the_main_path(stack, clients, empty_databases) -> None:
    patients, measurements = clients["patient_client"], clients["measurement_client"]
    token = bearer(stack)["Authorization"].removeprefix("Bearer ")
    with (
        patients.AuthenticatedClient(base_url=stack.url, token=token, raise_on_unexpected_status=True) as p_client,
        measurements.AuthenticatedClient(base_url=stack.url, token=token, raise_on_unexpected_status=True) as m_client,
    ):
        body = patients.models.PatientCreate(
            first_name="Grace", last_name="Hopper", birth_date=datetime(1941, 12, 9).date()
        )
        patient = api("patient_client", "patient_create").sync(client=p_client, body=body)
        assert isinstance(patient, patients.models.PatientOut), patient

        reading = measurements.models.Reading
        earlier = datetime.now(UTC) - timedelta(hours=2)
        stored = api("measurement_client", "measurement_create_for_patient").sync(
            patient.id, client=m_client, body=reading(measured_at=earlier, heart_rate_bpm=72, spo2_percent=97)
        )
        assert isinstance(stored, measurements.models.MeasurementRecord), stored
        batch = measurements.models.BatchIn(
            readings=[reading(measured_at=earlier + timedelta(minutes=m), heart_rate_bpm=80 + m) for m in (10, 20, 30)]
        )
        result = api("measurement_client", "measurement_batch_for_patient").sync(
            patient.id, client=m_client, body=batch
        )
        assert (result.stored, result.duplicates) == (3, 0), result

        def vitals_arrived() -> Any:
            read = api("patient_client", "patient_read").sync(patient.id, client=p_client)
            pulse = read.latest_vitals.additional_properties.get("heart_rate_bpm")
            return read if pulse is not None and pulse.value == 110 else None

        read = eventually(vitals_arrived)
        assert read.latest_vitals.additional_properties["spo2_percent"].value == 97

        listing, seen, cursor = api("measurement_client", "measurement_list_for_patient"), [], None
        while True:
            page = listing.sync(patient.id, client=m_client, limit=3, **({"cursor": cursor} if cursor else {}))
            seen += [item.heart_rate_bpm for item in page.items]
            cursor = page.next_cursor
            if cursor is None:
                break
        assert seen == [110, 100, 90, 72]

        api("patient_client", "patient_delete").sync_detailed(patient.id, client=p_client)
        gone = api("patient_client", "patient_read").sync_detailed(patient.id, client=p_client)
        assert gone.status_code == 404
