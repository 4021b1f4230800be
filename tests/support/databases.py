from __future__ import annotations

import os
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from smartpos_cli import migrate

DEFAULTS = {
    "portal": ("PORTAL_DATABASE_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/smartpos_portal"),
    "smarttab": ("SMARTTAB_DATABASE_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/smartpos_smarttab"),
    "device-auth": ("AUTH_DATABASE_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/smartpos_auth"),
    "console": ("CONSOLE_DATABASE_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/smartpos_console"),
}
PREFIX = os.environ.get("SMARTPOS_TEST_DB_PREFIX", "smartpos_test")
SERVICES = tuple(DEFAULTS)


@dataclass(frozen=True)
class TestDatabase:
    __test__ = False  # not a test class

    service: str
    env_var: str
    url: str  # SQLAlchemy URL (postgresql+asyncpg://…)

    @property
    def name(self) -> str:
        return urlsplit(self.url).path.lstrip("/")

    @property
    def dsn(self) -> str:  # plain asyncpg DSN
        return self.url.replace("+asyncpg", "")


def test_database(service: str, suffix: str = "", prefix: str = PREFIX) -> TestDatabase:
    env_var, default = DEFAULTS[service]
    base = urlsplit(os.environ.get(env_var) or default)
    name = f"{prefix}_{service.replace('-', '_')}{suffix}"
    return TestDatabase(service, env_var, urlunsplit(base._replace(path=f"/{name}")))


def run_databases(prefix: str) -> list[TestDatabase]:
    """The per-service databases a test run with `SMARTPOS_TEST_DB_PREFIX=prefix` creates."""
    return [test_database(service, prefix=prefix) for service in SERVICES]


async def recreate(db: TestDatabase) -> None:
    server = urlsplit(db.dsn)._replace(path="/postgres").geturl()
    conn = await asyncpg.connect(server)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{db.name}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{db.name}"')
    finally:
        await conn.close()


async def drop(*dbs: TestDatabase) -> None:
    for db in dbs:
        server = urlsplit(db.dsn)._replace(path="/postgres").geturl()
        conn = await asyncpg.connect(server)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{db.name}" WITH (FORCE)')
        finally:
            await conn.close()


def migrate_to_head(db: TestDatabase) -> None:
    migrate.run(migrate.SERVICES[db.service], "upgrade", "head", database_url=db.url)
