"""The CapabilityStatement: exactly what the FHIR routes of both services support (doc/fhir.md).

It is also where the routes learn which search parameters they know, so what the statement says
and what a search accepts cannot drift apart.
"""

from functools import cache

from fhir.resources.R4B.capabilitystatement import CapabilityStatement

from painkiller_common.fhir import FHIR_JSON, FHIR_VERSION

PATIENT_SEARCH = {
    "identifier": ("token", "The hospital MRN: `<system>|<mrn>` or the MRN alone."),
    "name": ("string", "Start of the given or family name, any case."),
    "birthdate": ("date", "Birth date, with the prefixes eq, gt, lt, ge, le."),
}
OBSERVATION_SEARCH = {
    "patient": ("reference", "The patient: `Patient/<id>` or the id."),
    "subject": ("reference", "The same as patient."),
    "category": ("token", "`vital-signs` (the only category served)."),
    "code": ("token", "LOINC: `http://loinc.org|8867-4` or `8867-4`; a comma separates alternatives."),
    "date": ("date", "effectiveDateTime, with the prefixes eq, gt, lt, ge, le."),
    "_sort": ("special", "`-date` only: newest first, the order of every page."),
}
LASTN = frozenset({"patient", "subject", "category", "code", "max"})
COMMON = "`_count` (at most 200) is honoured; paging follows `next` links."
SMART = "http://terminology.hl7.org/CodeSystem/restful-security-service"


def _resource(kind: str, profile: str, search: dict[str, tuple[str, str]], **extra: object) -> dict[str, object]:
    return {
        "type": kind,
        "profile": profile,
        "interaction": [{"code": "read"}, {"code": "search-type"}, {"code": "create"}],
        "versioning": "no-version",
        "readHistory": False,
        "updateCreate": False,
        "searchParam": [
            {"name": name, "type": kind_of, "documentation": doc} for name, (kind_of, doc) in search.items()
        ],
        **extra,
    }


@cache
def capability_statement() -> CapabilityStatement:
    return CapabilityStatement.model_validate(
        {
            "resourceType": "CapabilityStatement",
            "status": "active",
            "date": "2026-11-27",
            "kind": "instance",
            "software": {"name": "Painkiller"},
            "implementation": {"description": "Painkiller: a ward's patients and their vital signs"},
            "fhirVersion": FHIR_VERSION,
            "format": [FHIR_JSON, "json"],
            "rest": [
                {
                    "mode": "server",
                    "documentation": COMMON + " Unknown search parameters are ignored and left out of the self "
                    "link, or refused with `Prefer: handling=strict`.",
                    "security": {
                        "service": [{"coding": [{"system": SMART, "code": "SMART-on-FHIR"}]}],
                        "description": "Bearer tokens with SMART v2 scopes (`patient/Observation.rs`, "
                        "`user/Patient.crs`, ...); a `patient/` scope reaches its own patient only.",
                    },
                    "resource": [
                        _resource(
                            "Patient",
                            "http://hl7.org/fhir/StructureDefinition/Patient",
                            PATIENT_SEARCH,
                        ),
                        _resource(
                            "Observation",
                            "http://hl7.org/fhir/StructureDefinition/vitalsigns",
                            OBSERVATION_SEARCH,
                            operation=[
                                {
                                    "name": "lastn",
                                    "definition": "http://hl7.org/fhir/OperationDefinition/Observation-lastn",
                                    "documentation": "The newest Observation of each vital of one patient "
                                    "(`patient` required, `max=1`), from the patient's latest vitals.",
                                }
                            ],
                        ),
                    ],
                    "interaction": [{"code": "transaction"}],
                }
            ],
        }
    )


def search_parameters(resource: str) -> frozenset[str]:
    """The search parameters the statement lists for `resource`."""
    rest = capability_statement().rest
    assert rest is not None  # built above with one
    for entry in rest[0].resource or []:
        if entry.type == resource:
            return frozenset(param.name for param in entry.searchParam or [] if param.name)
    raise KeyError(resource)
