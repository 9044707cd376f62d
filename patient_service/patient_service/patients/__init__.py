"""Patients: their records, the routes, use cases and CSV import."""
