"""Painkiller patient service."""
