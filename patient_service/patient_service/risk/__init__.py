"""Risk: the latest vitals and NEWS2 assessment of each patient, kept from measurement events."""
