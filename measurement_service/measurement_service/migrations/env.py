from measurement_service.models import Base
from painkiller_common.migrations import run_migrations

run_migrations(Base.metadata)
