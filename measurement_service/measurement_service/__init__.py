"""Painkiller measurement service."""
