"""What tests take from the caller's environment: where the servers are, nothing else.

The suite honours the connection URLs of API.md's configuration table (so it runs against any PostgreSQL,
Redis and NATS, the README's Docker setup included) and the suite's own knobs: `SMARTPOS_TEST_*` and the fuzz
profile's `SMARTPOS_FUZZ_*` (`make fuzz` sets the thorough one). Every other
variable a service would read (`PORTAL_PORT`, `SMARTPOS_ENV`, `SMARTPOS_PGW_MODE`, …) is removed before anything
is imported, so a developer's shell cannot change what a test means.
"""

from __future__ import annotations

import os

CONNECTION_URLS = (
    "PORTAL_DATABASE_URL",
    "SMARTTAB_DATABASE_URL",
    "AUTH_DATABASE_URL",
    "CONSOLE_DATABASE_URL",
    "REDIS_URL",
    "NATS_URL",
)
SERVICE_PREFIXES = ("SMARTPOS_", "PORTAL_", "SMARTTAB_", "AUTH_", "CONSOLE_", "BENCH_")
KEEP_PREFIXES = ("SMARTPOS_TEST_", "SMARTPOS_FUZZ_")

DEFAULT_NATS_URL = "nats://127.0.0.1:4222"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"


def isolate_from_caller() -> list[str]:
    """Drop service settings inherited from the caller's shell; returns the names removed."""
    removed = [
        name
        for name in os.environ
        if name.startswith(SERVICE_PREFIXES) and name not in CONNECTION_URLS and not name.startswith(KEEP_PREFIXES)
    ]
    for name in removed:
        del os.environ[name]
    return removed


def nats_url() -> str:
    return os.environ.get("NATS_URL") or DEFAULT_NATS_URL


def redis_url() -> str:
    return os.environ.get("REDIS_URL") or DEFAULT_REDIS_URL
