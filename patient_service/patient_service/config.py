"""Patient service settings, read from PATIENT_* environment variables."""

from typing import Annotated

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from painkiller_common.settings import ServiceSettings
from patient_service.risk.observations import RCP_MINUTES, Level, Schedule

Minutes = Annotated[int, Field(gt=0, le=24 * 60)]


class WebhookSettings(BaseSettings):
    """WEBHOOK_* variables: where alerts may be sent and how hard the dispatcher tries (doc/alerts.md)."""

    model_config = SettingsConfigDict(env_prefix="WEBHOOK_", env_file=".env", extra="ignore")

    # Hosts that may be reached over plain http and at private or loopback addresses (dev, a
    # receiver on the same machine). Everything else: https to a public address only. None by
    # default: `make up` and the tests allow loopback themselves, production names its own.
    allowed_hosts: str = ""
    # An attempt that has no answer in this time has failed.
    timeout_s: float = Field(default=10, gt=0, le=10)
    # Retries: the first after about `retry_base_s`, then doubling up to `retry_cap_s`, with jitter.
    retry_base_s: float = Field(default=5, gt=0, le=10)
    retry_cap_s: float = Field(default=3600, gt=0, le=6 * 3600)
    # After this long without a 2xx a delivery is failed (it can still be re-sent by hand).
    give_up_after_s: float = Field(default=24 * 3600, gt=0, le=7 * 24 * 3600)
    # Deliveries in flight at once per dispatcher: a slow receiver holds up only one of them.
    concurrency: int = Field(default=4, ge=1, le=32)

    @property
    def allowed(self) -> frozenset[str]:
        return frozenset(host.lower().rstrip(".") for host in self.allowed_hosts.split())


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="PATIENT_", env_file=".env", extra="ignore")

    database_url: str = "postgresql+psycopg://painkiller_patient_app@127.0.0.1:5432/patients"
    amqp_url: str = "amqp://painkiller_patient@127.0.0.1:5672/%2F"
    event_producer: str = "painkiller_measurement"
    migration_database_url: str = "postgresql+psycopg://painkiller_patient_owner@127.0.0.1:5432/patients"
    port: int = 8001
    # NEWS2 and the BP category use readings this recent (before the newest reading).
    risk_window_hours: float = Field(default=24, gt=0, le=24 * 30)
    # Blood-pressure variability looks further back: it is about the trend across readings.
    bp_variability_window_days: float = Field(default=7, gt=0, le=365)
    # The identifier system of the hospital's MRNs in FHIR `Patient.identifier` (doc/fhir.md).
    fhir_mrn_system: str = "https://hospital.example/fhir/sid/mrn"
    webhooks: WebhookSettings = Field(default_factory=WebhookSettings)
    # Minutes between observations at each NEWS2 level (risk/observations.py): the RCP's minimum
    # frequency, and wards that observe more often, as JSON: {"ICU": {"zero": 60, "low": 60}}.
    observation_minutes: dict[Level, Minutes] = Field(default_factory=lambda: dict(RCP_MINUTES))
    ward_observation_minutes: dict[str, dict[Level, Minutes]] = Field(default_factory=dict)

    # A ward's event stream (patients/ward_stream.py): how often it looks for changes, and how long
    # it may stay silent before a heartbeat comment (under NGINX's 30 s read timeout).
    ward_stream_poll_s: float = Field(default=0.5, gt=0, le=5)
    ward_stream_heartbeat_s: float = Field(default=15, gt=0, le=25)

    @property
    def schedule(self) -> Schedule:
        return Schedule({**RCP_MINUTES, **self.observation_minutes}, self.ward_observation_minutes)
