from smartpos_shared.migrations import run
from smarttab.models import Base
from smarttab.settings import SmarttabSettings

run(Base.metadata, SmarttabSettings().database_url, version_table="alembic_version_smarttab")
