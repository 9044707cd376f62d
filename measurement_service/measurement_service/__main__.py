"""`python -m measurement_service api|migrate|relay|consumer`."""

from pathlib import Path

from measurement_service.config import get_settings
from measurement_service.events import HANDLERS
from measurement_service.models import EVENT_TABLES, RUNTIME_ROLE
from painkiller_common import cli
from painkiller_common.topology import PATIENT_EVENTS_FOR_MEASUREMENTS

if __name__ == "__main__":
    cli.run(
        None,
        settings=get_settings(),
        app_factory="measurement_service.main:create_app",
        migrations_dir=Path(__file__).parent / "migrations",
        tables=EVENT_TABLES,
        queue=PATIENT_EVENTS_FOR_MEASUREMENTS,
        handlers=HANDLERS,
        runtime_role=RUNTIME_ROLE,
    )
