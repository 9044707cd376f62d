"""Patient service settings, read from PATIENT_* environment variables."""

from functools import lru_cache

from pydantic_settings import SettingsConfigDict

from painkiller_common.settings import ServiceSettings


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="PATIENT_", env_file=".env", extra="ignore")

    database_url: str = "postgresql+psycopg2://postgres@127.0.0.1:5432/patients"
    port: int = 8001


@lru_cache
def get_settings() -> Settings:
    return Settings()
