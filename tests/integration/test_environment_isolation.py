"""The suite honours the configured server URLs and nothing else of the caller's environment.

Runs a slice of the suite in a child pytest whose shell is hostile: NATS elsewhere (a private nats-server on a
free port, as with the README's Docker setup), every documented port variable set, production mode asked for.
The slice holds the tests that once hard-coded `nats://127.0.0.1:4222` or read `PORTAL_PORT`.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Iterator

import pytest

from tests.support.databases import drop, run_databases
from tests.support.processes import ROOT, PrivateNats

HOSTILE = {
    "PORTAL_PORT": "1",
    "SMARTTAB_PORT": "1",
    "AUTH_PORT": "1",
    "SMARTPOS_ENV": "production",
    "SMARTPOS_PGW_MODE": "http",
    "SMARTPOS_AUTH_ISSUER": "https://auth.example.invalid",
    "SMARTPOS_LOG_LEVEL": "DEBUG",
    "PORTAL_RELAY_IN_PROCESS": "false",
}
PREFIX = "smartpos_test_env"


@pytest.fixture
def private_nats() -> Iterator[PrivateNats]:
    server = PrivateNats().start()
    try:
        yield server
    finally:
        server.stop()


def test_the_suite_follows_nats_url_and_ignores_service_settings_of_the_shell(private_nats: PrivateNats) -> None:
    env = {**os.environ, **HOSTILE, "NATS_URL": private_nats.url, "SMARTPOS_TEST_DB_PREFIX": PREFIX}
    try:
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "pytest",
                "-q",
                "-p",
                "no:cacheprovider",
                "tests/shared/test_settings.py",
                "tests/integration/test_live_hub.py::test_order_created_is_published_on_its_merchant_subject_within_5_seconds",
            ],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=240,
            check=False,
        )
    finally:
        asyncio.run(drop(*run_databases(PREFIX)))
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert " passed" in result.stdout and "failed" not in result.stdout
