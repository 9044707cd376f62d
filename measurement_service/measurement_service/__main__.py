"""`python -m measurement_service api|migrate`."""

from pathlib import Path

from measurement_service.config import get_settings
from painkiller_common import cli

if __name__ == "__main__":
    cli.run(
        None,
        settings=get_settings(),
        app_factory="measurement_service.main:create_app",
        migrations_dir=Path(__file__).parent / "migrations",
    )
