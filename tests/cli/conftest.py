"""The platform the command line talks to: device-auth and a portal with the mock gateway, as uvicorn processes
(one pair per test module)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from device_auth.clients.bootstrap import bootstrap
from device_auth.settings import AuthSettings
from tests.support.databases import TestDatabase
from tests.support.processes import ServiceProcess


@pytest.fixture(scope="module")
def credentials(databases: dict[str, TestDatabase], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An admin client's JSON, as `make run` writes it."""
    path = tmp_path_factory.mktemp("terminal") / "admin-client.json"
    path.write_text(json.dumps(asyncio.run(bootstrap(AuthSettings(database_url=databases["device-auth"].url)))))
    return path


@pytest.fixture(scope="module")
def stack(service_env: dict[str, str]) -> Iterator[dict[str, ServiceProcess]]:
    auth = ServiceProcess("device-auth", service_env)
    portal = ServiceProcess("portal", service_env)
    for proc in (auth, portal):
        proc.env.update(
            {"SMARTPOS_AUTH_ISSUER": auth.url, "SMARTPOS_PGW_MODE": "mock", "PORTAL_PORT": str(portal.port)}
        )
    try:
        auth.start()
        portal.start()
        yield {"auth": auth, "portal": portal}
    finally:
        portal.stop()
        auth.stop()
