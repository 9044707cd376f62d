"""`python -m patient_service api|migrate|relay|consumer`."""

from painkiller_common import cli
from patient_service.spec import SPEC

if __name__ == "__main__":
    cli.run(SPEC, app_factory="patient_service.main:create_app")
