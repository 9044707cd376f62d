"""FHIR R4: vital-signs Observations read, searched and created."""
