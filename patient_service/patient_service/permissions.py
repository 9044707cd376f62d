"""Who may do what in the patient service: the scope of every route, JSON, FHIR and webhooks, in
one table that mirrors doc/security.md ("Scopes"). A `patient/` token reaches its own patient
only; `contexts` names the token kinds a route takes at all.

The two patient searches differ on purpose. The JSON list (`GET /api/v1/patient`) is a
clinician's ward list: `user/` and `system/` tokens only. FHIR's `GET /fhir/Patient` also takes a
`patient/` token and answers with that one patient, as SMART on FHIR apps expect (a patient's app
finds its own record by searching Patient).
"""

from typing import Annotated

from fastapi import Depends

from painkiller_common.security.access import USER_OR_SYSTEM, Access, requires

CreatePatient = Annotated[Access, Depends(requires("Patient", "c", contexts=USER_OR_SYSTEM))]
ImportPatients = Annotated[Access, Depends(requires("Patient", "cu", contexts=USER_OR_SYSTEM, action="import"))]
ReadPatient = Annotated[Access, Depends(requires("Patient", "r"))]
ListPatients = Annotated[Access, Depends(requires("Patient", "s", contexts=USER_OR_SYSTEM))]
SearchPatients = Annotated[Access, Depends(requires("Patient", "s"))]  # FHIR: a patient/ token finds itself
UpdatePatient = Annotated[Access, Depends(requires("Patient", "u"))]
DeletePatient = Annotated[Access, Depends(requires("Patient", "d"))]
ReadAudit = Annotated[Access, Depends(requires("AuditEvent", "s", contexts=USER_OR_SYSTEM))]
# Whether a patient exists, and nothing more: the measurement service's token has this scope only,
# not Patient.r, so a leak of that token reveals no name or MRN.
CheckExistence = Annotated[Access, Depends(requires("PatientExistence", "r", contexts=("system",)))]
# Which patient has an MRN, and nothing more: the measurement service takes HL7 v2 messages, which
# name the patient by MRN (doc/hl7.md).
FindIdentifiers = Annotated[Access, Depends(requires("PatientIdentifier", "s", contexts=("system",)))]
# Admissions, transfers and discharges from HL7 v2 ADT messages: that service's listener again.
AdmitPatients = Annotated[Access, Depends(requires("PatientAdmission", "cu", contexts=("system",), action="admit"))]
# FHIR's Observation/$lastn, served from the latest vitals this service keeps.
SearchObservations = Annotated[Access, Depends(requires("Observation", "s"))]

CreateSubscription = Annotated[Access, Depends(requires("Subscription", "c", contexts=USER_OR_SYSTEM))]
ReadSubscription = Annotated[Access, Depends(requires("Subscription", "r", contexts=USER_OR_SYSTEM))]
SearchSubscriptions = Annotated[Access, Depends(requires("Subscription", "s", contexts=USER_OR_SYSTEM))]
UpdateSubscription = Annotated[Access, Depends(requires("Subscription", "u", contexts=USER_OR_SYSTEM))]
DeleteSubscription = Annotated[Access, Depends(requires("Subscription", "d", contexts=USER_OR_SYSTEM))]
