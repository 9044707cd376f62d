"""Settings every service has; each service subclasses this with its own env prefix."""

import re

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from painkiller_common.security.auth import AuthSettings

# Every process reaches PostgreSQL through psycopg 3 (doc/architecture.md, "One way to reach the
# database: psycopg 3").
DRIVER = "postgresql+psycopg"
_SCHEME = re.compile(r"^postgres(?:ql)?(?:\+\w+)?://")


def on_our_driver(url: str) -> str:
    """`url` on psycopg 3: a URL naming another driver or none (`postgresql://`, or the
    `postgresql+psycopg2://` an older .env holds) names the same database and role."""
    return _SCHEME.sub(f"{DRIVER}://", url, count=1)


class ServiceSettings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    # The API, relay and consumer connect as a runtime role (no DDL, no other database) ...
    database_url: str
    # ... and migrations as the database's owner.
    migration_database_url: str
    # A superuser, for `migrate` to create the roles and the database first (dev, first install).
    admin_database_url: str | None = None
    # Connections per API process (doc/performance.md, "Pool sizes"): the async pool of the hot
    # routes, and the SQLAlchemy pool of the others (a request holds one connection at a time).
    db_pool_size: int = Field(default=10, ge=1, le=100)
    # How long a hot route waits for a connection (all busy, or PostgreSQL restarting) before 503.
    db_pool_timeout_s: float = Field(default=5.0, gt=0, le=60)
    db_sync_pool_size: int = Field(default=3, ge=1, le=100)
    db_max_overflow: int = Field(default=3, ge=0, le=100)
    # Each service has a broker user of its own (doc/security.md), never `guest`.
    amqp_url: str
    # The broker's admin user, for `migrate` to declare the exchanges and queues (no running
    # process has it); unset: `amqp_url`'s user declares them, if it may (the services' own tests).
    amqp_admin_url: str | None = None
    # The broker user the other service publishes as: its consumer applies no one else's events.
    event_producer: str
    log_level: str = "INFO"
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    workers: int = Field(default=1, ge=1, le=64)
    # This process's /metrics port (doc/operations.md): one per process (API, relay, consumer),
    # never the port NGINX routes to. None: no metrics served.
    metrics_port: int | None = Field(default=None, ge=1, le=65535)
    # Addresses whose X-Forwarded-* headers are believed: NGINX's. "*" inside a container network.
    forwarded_allow_ips: str = "127.0.0.1"
    # The FHIR base URL clients use, for `next` links and Locations (doc/fhir.md); unset: the URL
    # the request came to, as NGINX passes it on.
    fhir_base_url: str | None = None
    # Read from AUTH_* (the same for every service): who signs the tokens the API accepts.
    auth: AuthSettings = Field(default_factory=AuthSettings)

    @field_validator("database_url", "migration_database_url", "admin_database_url")
    @classmethod
    def _on_our_driver(cls, url: str | None) -> str | None:
        return None if url is None else on_our_driver(url)
