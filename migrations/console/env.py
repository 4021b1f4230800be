from console.models import Base
from console.settings import ConsoleSettings
from smartpos_shared.migrations import run

run(Base.metadata, ConsoleSettings().database_url, version_table="alembic_version_console")
