"""Whether a patient exists: the local replica fed by `patient.*` events, else one HTTP question.

The replica answers almost always. On a miss (a patient created a moment ago, whose event has not
arrived yet) the patient service is asked once over its internal address with a short timeout;
an unreachable patient service is a 503 with Retry-After, never a 500. The service asks with a
token of its own, `system/PatientExistence.r`: whether a patient exists and nothing more, never
the record. It is read from a file so that whatever renews it (a sidecar of the identity
provider, `make up` in dev) can replace it without a restart (doc/security.md).
"""

import logging
import uuid
from pathlib import Path

import httpx

from painkiller_common.errors import NotFound, Unavailable
from painkiller_common.observability import logs

logger = logging.getLogger(__name__)


class PatientDirectory:
    """The patient service, asked over HTTP whether a patient exists."""

    def __init__(self, base_url: str, timeout_s: float, token_file: str | None) -> None:
        self._client = httpx.AsyncClient(base_url=base_url, timeout=timeout_s)
        self._token = TokenFile(token_file)

    async def require(self, patient_id: uuid.UUID) -> None:
        """Return if the patient exists; 404 if not; 503 if the patient service cannot say."""
        response = await self._ask("GET", f"/api/v1/patient/{patient_id}/exists")
        if response.status_code == 404:
            raise NotFound(f"Patient {patient_id} does not exist.")
        self._expect(response, 204)

    async def identify(self, mrns: list[str]) -> dict[str, uuid.UUID]:
        """The ids of the patients with these MRNs (those that exist), for HL7 v2 messages, which
        name a patient by MRN; 503 if the patient service cannot say. The MRNs go in the body."""
        response = await self._ask("POST", "/api/v1/patient/identifiers", json={"mrns": mrns})
        self._expect(response, 200)
        return {match["mrn"]: uuid.UUID(match["id"]) for match in response.json()["patients"]}

    async def admit(self, admission: dict[str, object], key: str) -> httpx.Response:
        """Send an HL7 ADT message's admission, transfer, discharge or update to the patient
        service, once per `key` however often it is sent; its answer as it is (2xx, 404 or 422
        problem+json). 503 if the patient service cannot answer."""
        response = await self._ask(
            "POST", "/api/v1/patient/admissions", json=admission, headers={"Idempotency-Key": key}
        )
        if response.status_code not in (200, 201, 404, 422):
            self._expect(response, 200)  # raises
        return response

    async def _ask(
        self, method: str, path: str, json: object = None, headers: dict[str, str] | None = None
    ) -> httpx.Response:
        try:
            # The request's ids go along, so the patient service's log lines join this request's.
            sent = {"Authorization": f"Bearer {self._token.read()}", **logs.outgoing_headers(), **(headers or {})}
            return await self._client.request(method, path, headers=sent, json=json)
        except (httpx.HTTPError, OSError) as exc:
            logger.warning(
                "patient service unreachable: %s %s", type(exc).__name__, exc if isinstance(exc, OSError) else ""
            )
            raise Unavailable("The patient service did not answer; retry shortly.") from None

    @staticmethod
    def _expect(response: httpx.Response, status: int) -> None:
        if response.status_code in (401, 403):
            logger.error("the patient service refused this service's token (%s)", response.status_code)
            raise Unavailable("The patient service could not answer; retry shortly.")
        if response.status_code != status:
            logger.warning("patient service answered %s for a lookup", response.status_code)
            raise Unavailable("The patient service could not answer; retry shortly.")

    async def close(self) -> None:
        await self._client.aclose()


class TokenFile:
    """A bearer token kept in a file, read again when the file changes."""

    def __init__(self, path: str | None) -> None:
        self._path = Path(path) if path else None
        self._mtime = -1.0
        self._token = ""

    def read(self) -> str:
        if self._path is None:
            raise OSError("no token file is configured (MEASUREMENT_PATIENT_SERVICE_TOKEN_FILE)")
        mtime = self._path.stat().st_mtime
        if mtime != self._mtime:
            self._token, self._mtime = self._path.read_text().strip(), mtime
        return self._token
