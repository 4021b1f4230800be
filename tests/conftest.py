from __future__ import annotations

from tests.support.environment import isolate_from_caller

isolate_from_caller()  # before any service module reads its settings (see tests/support/environment.py)

import asyncio  # noqa: E402
import json  # noqa: E402
import uuid  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

from device_auth.clients.bootstrap import bootstrap  # noqa: E402
from device_auth.settings import AuthSettings  # noqa: E402
from tests.support.databases import TestDatabase, migrate_to_head, recreate, test_database  # noqa: E402


@pytest.fixture(scope="session")
def databases() -> dict[str, TestDatabase]:
    """Fresh databases for this run, one per service, built by the services' real migrations."""
    dbs = {service: test_database(service) for service in ("portal", "smarttab", "device-auth", "console")}
    for db in dbs.values():
        asyncio.run(recreate(db))
        migrate_to_head(db)
    return dbs


@pytest.fixture(scope="session")
def service_env(databases: dict[str, TestDatabase]) -> dict[str, str]:
    """Environment for service processes: the test databases, quiet logs."""
    env = {db.env_var: db.url for db in databases.values()}
    env.update({"SMARTPOS_ENV": "development", "SMARTPOS_LOG_LEVEL": "WARNING", "SMARTPOS_ACCESS_LOG": "false"})
    # smarttab processes project through a durable consumer of this run's own, from now on, deleted when idle:
    # not the backlog of every other smarttab that ever used this NATS.
    env.update(
        {
            "SMARTTAB_PROJECTOR_DURABLE": f"smarttab-test-{uuid.uuid4().hex[:12]}",
            "SMARTTAB_PROJECTOR_START": "new",
            "SMARTTAB_PROJECTOR_INACTIVE_SECONDS": "120",
            "AUTH_STORE_PROJECTOR_DURABLE": f"device-auth-test-{uuid.uuid4().hex[:12]}",
            "AUTH_STORE_PROJECTOR_START": "new",
            "AUTH_STORE_PROJECTOR_INACTIVE_SECONDS": "120",
            "CONSOLE_EVIDENCE_PROJECTOR_DURABLE": f"console-evidence-test-{uuid.uuid4().hex[:12]}",
            "CONSOLE_EVIDENCE_PROJECTOR_START": "new",
            "CONSOLE_EVIDENCE_PROJECTOR_INACTIVE_SECONDS": "120",
            "CONSOLE_PILOT_PROJECTOR_DURABLE": f"console-pilot-test-{uuid.uuid4().hex[:12]}",
            "CONSOLE_PILOT_PROJECTOR_START": "new",
            "CONSOLE_PILOT_PROJECTOR_INACTIVE_SECONDS": "120",
            "CONSOLE_AUDIT_PROJECTOR_DURABLE": f"console-audit-test-{uuid.uuid4().hex[:12]}",
            "CONSOLE_AUDIT_PROJECTOR_START": "new",
            "CONSOLE_AUDIT_PROJECTOR_INACTIVE_SECONDS": "120",
        }
    )
    return env


@pytest.fixture(scope="module")
def credentials(databases: dict[str, TestDatabase], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An admin client's JSON, as `make run` writes it."""
    path = tmp_path_factory.mktemp("terminal") / "admin-client.json"
    path.write_text(json.dumps(asyncio.run(bootstrap(AuthSettings(database_url=databases["device-auth"].url)))))
    return path


pytest_plugins = ["tests.support.auth_fixtures", "tests.support.portal_fixtures", "tests.support.console_fixtures"]
