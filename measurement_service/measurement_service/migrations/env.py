from measurement_service.models import Base
from painkiller_common.db.migrations import run_migrations

run_migrations(Base.metadata)
