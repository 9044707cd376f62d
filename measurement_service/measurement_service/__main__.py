"""`python -m measurement_service api|migrate|relay|consumer`."""

from measurement_service.spec import SPEC
from painkiller_common import cli

if __name__ == "__main__":
    cli.run(SPEC, app_factory="measurement_service.main:create_app")
