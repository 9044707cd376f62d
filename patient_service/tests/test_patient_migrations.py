"""The schema the migrations build is the schema the models describe (nothing left to autogenerate)."""

import subprocess
import sys

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine

from painkiller_common.db import downgrade
from painkiller_testing.databases import DatabaseRoles
from patient_service.models import Base
from patient_service.spec import SPEC


def test_migrations_match_the_models(settings) -> None:
    engine = create_engine(settings.database_url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            assert compare_metadata(context, Base.metadata) == []
    finally:
        engine.dispose()


def test_migrations_started_at_once_take_turns(database: DatabaseRoles, settings) -> None:
    """As pods starting together each run `migrate` in an init container (doc/scaling.md)."""
    downgrade(SPEC.migrations, database.owner_url, "base")
    script = "import sys; from pathlib import Path; from painkiller_common.db import upgrade; upgrade(Path(sys.argv[1]), sys.argv[2])"  # noqa: E501
    runs = [subprocess.Popen([sys.executable, "-c", script, str(SPEC.migrations), database.owner_url],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(3)]  # fmt: skip
    results = [(run.wait(timeout=120), run.stderr.read().decode()[-2000:] if run.stderr else "") for run in runs]
    assert [code for code, _ in results] == [0, 0, 0], results
    test_migrations_match_the_models(settings)
