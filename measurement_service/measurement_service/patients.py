"""Asking the patient service whether a patient exists (internal HTTP, short timeout)."""

import logging
import uuid

import httpx

from painkiller_common.problems import NotFound, ServiceUnavailable

logger = logging.getLogger(__name__)


class PatientDirectory:
    """The measurement service's view of which patients exist."""

    def __init__(self, base_url: str, timeout_s: float) -> None:
        self._client = httpx.Client(base_url=base_url, timeout=timeout_s)

    def require(self, patient_id: uuid.UUID) -> None:
        """Return if the patient exists; 404 if not; 503 if the patient service cannot say."""
        try:
            response = self._client.get(f"/api/v1/patient/{patient_id}")
        except httpx.HTTPError as exc:
            logger.warning("patient service unreachable: %s", type(exc).__name__)
            raise ServiceUnavailable("The patient service did not answer; retry shortly.") from None
        if response.status_code == 404:
            raise NotFound(f"Patient {patient_id} does not exist.")
        if response.status_code != 200:
            logger.warning("patient service answered %s for a lookup", response.status_code)
            raise ServiceUnavailable("The patient service could not answer; retry shortly.")

    def close(self) -> None:
        self._client.close()
