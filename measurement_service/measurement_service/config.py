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

    # HL7 v2 over MLLP (doc/hl7.md): `python -m measurement_service hl7` listens here, behind
    # NGINX's stream proxy on HL7_MLLP_PORT (2575) and its TLS port (2576).
    hl7_port: int = Field(default=2577, ge=1, le=65535)
    # Who may send: addresses or networks, space-separated; empty means this machine only.
    hl7_allowed_senders: str = ""
    # NGINX tells the sender's address in a PROXY protocol line first (its stream proxy is in front).
    hl7_proxy_protocol: bool = False
    # A block larger than this is refused (AR) and its connection closed.
    hl7_max_message_bytes: int = Field(default=1_048_576, ge=1024, le=16_777_216)
    # How often held messages are matched against new patients, and how long they are kept held.
    hl7_release_interval_s: float = Field(default=5.0, gt=0, le=3600)
    hl7_held_retention_days: int = Field(default=30, ge=1, le=3650)
