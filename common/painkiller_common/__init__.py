"""Code both Painkiller services share, kept in one place so the services cannot drift apart."""
