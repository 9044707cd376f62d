"""`python -m patient_service api|migrate`."""

from pathlib import Path

from painkiller_common import cli
from patient_service.config import get_settings

if __name__ == "__main__":
    cli.run(
        None,
        settings=get_settings(),
        app_factory="patient_service.main:create_app",
        migrations_dir=Path(__file__).parent / "migrations",
    )
