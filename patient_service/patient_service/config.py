"""Patient service settings, read from PATIENT_* environment variables."""

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from painkiller_common.settings import ServiceSettings


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="PATIENT_", env_file=".env", extra="ignore")

    database_url: str = "postgresql+psycopg2://painkiller_patient_app@127.0.0.1:5432/patients"
    amqp_url: str = "amqp://painkiller_patient@127.0.0.1:5672/%2F"
    event_producer: str = "painkiller_measurement"
    migration_database_url: str = "postgresql+psycopg2://painkiller_patient_owner@127.0.0.1:5432/patients"
    port: int = 8001
    # NEWS2 and the BP category use readings this recent (before the newest reading).
    risk_window_hours: float = Field(default=24, gt=0, le=24 * 30)
    # Blood-pressure variability looks further back: it is about the trend across readings.
    bp_variability_window_days: float = Field(default=7, gt=0, le=365)
