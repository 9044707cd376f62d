"""Settings every service has; each service subclasses this with its own env prefix."""

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class ServiceSettings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    database_url: str
    # A request holds one connection at a time, so the pool only needs one per worker thread.
    db_pool_size: int = Field(default=10, ge=1, le=100)
    db_max_overflow: int = Field(default=10, ge=0, le=100)
    amqp_url: str = "amqp://guest:guest@127.0.0.1:5672/%2F"
    log_level: str = "INFO"
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    workers: int = Field(default=1, ge=1, le=64)
    # Addresses whose X-Forwarded-* headers are believed: NGINX's. "*" inside a container network.
    forwarded_allow_ips: str = "127.0.0.1"
