"""`python -m patient_service api|migrate|relay|consumer`."""

from pathlib import Path

from painkiller_common import cli
from painkiller_common.topology import MEASUREMENT_EVENTS_FOR_PATIENTS
from patient_service.config import get_settings
from patient_service.events import HANDLERS, reassess_after
from patient_service.models import EVENT_TABLES, RUNTIME_ROLE

if __name__ == "__main__":
    settings = get_settings()
    cli.run(
        None,
        settings=settings,
        app_factory="patient_service.main:create_app",
        migrations_dir=Path(__file__).parent / "migrations",
        tables=EVENT_TABLES,
        queue=MEASUREMENT_EVENTS_FOR_PATIENTS,
        handlers=HANDLERS,
        runtime_role=RUNTIME_ROLE,
        after_batch=reassess_after(settings),
    )
