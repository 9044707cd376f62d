"""FHIR R4: the CapabilityStatement, Patient resources, and `$lastn` of latest vitals."""
