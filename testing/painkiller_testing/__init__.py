"""Test tooling shared by both services' tests, the end-to-end suite and the dev stack."""
