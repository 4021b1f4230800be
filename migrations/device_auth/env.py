from device_auth.models import Base
from device_auth.settings import AuthSettings
from smartpos_shared.migrations import run

run(Base.metadata, AuthSettings().database_url, version_table="alembic_version_device_auth")
