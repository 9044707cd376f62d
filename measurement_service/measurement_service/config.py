"""Measurement service settings, read from MEASUREMENT_* environment variables."""

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from painkiller_common.settings import ServiceSettings


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="MEASUREMENT_", env_file=".env", extra="ignore")

    database_url: str = "postgresql+psycopg://painkiller_measurement_app@127.0.0.1:5432/measurements"
    amqp_url: str = "amqp://painkiller_measurement@127.0.0.1:5672/%2F"
    event_producer: str = "painkiller_patient"
    migration_database_url: str = "postgresql+psycopg://painkiller_measurement_owner@127.0.0.1:5432/measurements"
    port: int = 8002
    # Internal address of the patient service (not through NGINX): asked whether a patient exists.
    patient_service_url: str = "http://127.0.0.1:8001"
    # Short: a slow patient service must turn into a quick 503, not a pile of waiting requests.
    patient_service_timeout_s: float = Field(default=2.0, gt=0, le=30)
    # A file holding this service's own token for that question (scope system/PatientExistence.r).
    patient_service_token_file: str | None = None
