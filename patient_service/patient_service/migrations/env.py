from painkiller_common.db.migrations import run_migrations
from patient_service.models import Base

run_migrations(Base.metadata)
