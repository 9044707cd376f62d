"""Who may do what in the measurement service: the scope of every route, JSON and FHIR, in one
table that mirrors doc/security.md ("Scopes"). A `patient/` token reaches its own patient's
readings only; `contexts` names the token kinds a route takes at all."""

from typing import Annotated

from fastapi import Depends

from painkiller_common.security.access import USER_OR_SYSTEM, Access, requires

CreateReading = Annotated[Access, Depends(requires("Observation", "c"))]
ReadReading = Annotated[Access, Depends(requires("Observation", "r"))]
SearchReadings = Annotated[Access, Depends(requires("Observation", "s"))]
DeleteReading = Annotated[Access, Depends(requires("Observation", "d"))]
ReadAudit = Annotated[Access, Depends(requires("AuditEvent", "s", contexts=USER_OR_SYSTEM))]
# Readings held for an MRN no patient has yet (HL7 v2, doc/hl7.md): clinicians and systems.
SearchHeldMessages = Annotated[Access, Depends(requires("Observation", "s", contexts=USER_OR_SYSTEM))]
