"""The schema the migrations build is the schema the models describe (nothing left to autogenerate)."""

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine

from measurement_service.models import Base


def test_migrations_match_the_models(settings) -> None:
    engine = create_engine(settings.database_url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            assert compare_metadata(context, Base.metadata) == []
    finally:
        engine.dispose()
