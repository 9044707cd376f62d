"""The JSON API's HTTP side: the app factory, problem+json errors, write answers, pages, health."""
