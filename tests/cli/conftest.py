"""The platform the command line talks to: device-auth and a portal with the mock gateway, as uvicorn processes
(one pair per test module)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.processes import ServiceProcess


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
