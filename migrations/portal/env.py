from portal.models import Base
from portal.settings import PortalSettings
from smartpos_shared.migrations import run

run(Base.metadata, PortalSettings().database_url, version_table="alembic_version_portal")
