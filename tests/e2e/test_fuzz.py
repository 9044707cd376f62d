"""Schemathesis generates valid and invalid requests from each OpenAPI document and sends them
through NGINX, with a clinician's token so that they reach the code behind the token check: no
request may be a 5xx, and every response must match the document."""

import os

import hypothesis
import pytest
import schemathesis
from harness import bearer
from schemathesis import checks

CHECKS = [checks.not_a_server_error, checks.response_schema_conformance, checks.status_code_conformance]
SETTINGS = hypothesis.settings(
    max_examples=int(os.environ.get("FUZZ_EXAMPLES", "40")),
    deadline=None,
    database=None,
    suppress_health_check=list(hypothesis.HealthCheck),
)


@pytest.mark.parametrize("document", ["/api/v1/patient/openapi.json", "/api/v1/measures/openapi.json"])
def test_generated_requests_get_documented_answers_and_no_5xx(stack, empty_databases, document: str) -> None:
    schema = schemathesis.openapi.from_url(stack.url + document)
    headers = bearer(stack)
    for result in schema.get_all_operations():
        operation = result.ok()

        @SETTINGS
        @hypothesis.given(case=operation.as_strategy())
        def send(case) -> None:
            case.call_and_validate(base_url=stack.url, headers=headers, checks=CHECKS)

        send()
