"""Readings: the routes, use cases, the hot statements, and the patient replica they check."""
