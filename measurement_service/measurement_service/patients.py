"""Whether a patient exists: the local replica fed by `patient.*` events, else one HTTP question.

The replica answers almost always. On a miss (a patient created a moment ago, whose event has not
arrived yet) the patient service is asked once over its internal address with a short timeout;
an unreachable patient service is a 503 with Retry-After, never a 500.
"""

import logging
import uuid

import httpx
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from measurement_service.models import KnownPatient
from painkiller_common.problems import NotFound, ServiceUnavailable

logger = logging.getLogger(__name__)


class PatientDirectory:
    """The patient service, asked over HTTP whether a patient exists."""

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


def _known(session: Session, patient_id: uuid.UUID) -> KnownPatient | None:
    # FOR SHARE: a `patient.deleted` being applied waits for this transaction, and then erases
    # whatever it wrote, so no reading can outlive its patient.
    return session.scalars(
        select(KnownPatient).where(KnownPatient.patient_id == patient_id).with_for_update(read=True)
    ).first()


def check_patient(session: Session, directory: PatientDirectory, patient_id: uuid.UUID) -> None:
    """For reads: 404 unless the patient exists; no lock, nothing written."""
    deleted = session.scalar(select(KnownPatient.deleted).where(KnownPatient.patient_id == patient_id))
    if deleted is None:
        directory.require(patient_id)
    elif deleted:
        raise NotFound(f"Patient {patient_id} does not exist.")


def require_patient(session: Session, directory: PatientDirectory, patient_id: uuid.UUID) -> None:
    """Return if the patient exists (404 if not, 503 if nobody can say), holding it until commit."""
    known = _known(session, patient_id)
    if known is None:
        directory.require(patient_id)
        session.execute(insert(KnownPatient).values(patient_id=patient_id, version=0).on_conflict_do_nothing())
        known = _known(session, patient_id)
    if known is None or known.deleted:
        raise NotFound(f"Patient {patient_id} does not exist.")
