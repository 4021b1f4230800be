"""pytest-alembic's built-in checks for each service's Alembic environment: one head, base → head works, the
models match the DDL the migrations produce, and every downgrade works (up/down consistency)."""

from __future__ import annotations

import pytest
import pytest_alembic
from pytest_alembic import tests as builtins  # a module, so pytest does not collect its functions here
from pytest_alembic.config import Config

from smartpos_cli.migrate import SERVICES, alembic_config
from tests.migrations.conftest import sync_engine
from tests.support.databases import TestDatabase

CHECKS = {
    "single_head": builtins.test_single_head_revision,
    "upgrade": builtins.test_upgrade,
    "model_matches_ddl": builtins.test_model_definitions_match_ddl,
    "up_down_consistency": builtins.test_up_down_consistency,
}


@pytest.mark.parametrize("check", sorted(CHECKS))
@pytest.mark.parametrize("service", sorted(SERVICES))
def test_builtin(service: str, check: str, scratch_db: TestDatabase) -> None:
    engine = sync_engine(scratch_db)
    config = Config(alembic_config=alembic_config(SERVICES[service]))
    try:
        with pytest_alembic.runner(config=config, engine=engine) as alembic_runner:
            CHECKS[check](alembic_runner)
    finally:
        engine.dispose()
