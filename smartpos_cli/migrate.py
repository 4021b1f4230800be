"""`smartpos migrate <service|all> <upgrade REV|downgrade REV|current|history|verify>`.

A thin layer over Alembic's command API and the `[portal]`, `[smarttab]`, `[device_auth]` sections of the
repository's alembic.ini; `verify` compares the live schema with the service's models and names any drift.
"""

from __future__ import annotations

import asyncio
import importlib
from dataclasses import dataclass
from pathlib import Path

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from sqlalchemy import MetaData
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class ServiceDb:
    name: str  # CLI name (API.md)
    section: str  # alembic.ini section
    package: str
    settings_class: str

    def settings_url(self) -> str:
        module = importlib.import_module(f"{self.package}.settings")
        return str(getattr(module, self.settings_class)().database_url)

    def metadata(self) -> MetaData:
        module = importlib.import_module(f"{self.package}.models")
        return module.Base.metadata  # type: ignore[no-any-return]

    def version_table(self) -> str:
        return f"alembic_version_{self.section}"


SERVICES: dict[str, ServiceDb] = {
    "portal": ServiceDb("portal", "portal", "portal", "PortalSettings"),
    "smarttab": ServiceDb("smarttab", "smarttab", "smarttab", "SmarttabSettings"),
    "device-auth": ServiceDb("device-auth", "device_auth", "device_auth", "AuthSettings"),
    "console": ServiceDb("console", "console", "console", "ConsoleSettings"),
}


def alembic_config(service: ServiceDb, database_url: str | None = None) -> Config:
    config = Config(str(ROOT / "alembic.ini"), ini_section=service.section)
    config.set_main_option("script_location", str(ROOT / "migrations" / service.section))
    if database_url:
        config.attributes["database_url"] = database_url
    return config


def resolve(name: str) -> list[ServiceDb]:
    if name == "all":
        return list(SERVICES.values())
    key = name.replace("_", "-")
    if key not in SERVICES:
        raise KeyError(name)
    return [SERVICES[key]]


def _diff(connection: Connection, metadata: MetaData, version_table: str) -> list[object]:
    context = MigrationContext.configure(
        connection,
        opts={"compare_type": True, "compare_server_default": False, "version_table": version_table},
    )
    diffs = compare_metadata(context, metadata)
    return [d for d in diffs if not _is_version_table(d, version_table)]


def _is_version_table(diff: object, version_table: str) -> bool:
    if isinstance(diff, tuple) and len(diff) >= 2 and diff[0] == "remove_table":
        return getattr(diff[1], "name", None) == version_table
    return False


async def schema_drift(service: ServiceDb, database_url: str | None = None) -> list[object]:
    """Differences between the live schema and the models; empty when they match."""
    engine = create_async_engine(database_url or service.settings_url(), hide_parameters=True)
    try:
        async with engine.connect() as conn:
            return await conn.run_sync(_diff, service.metadata(), service.version_table())
    finally:
        await engine.dispose()


def run(service: ServiceDb, action: str, revision: str | None, database_url: str | None = None) -> int:
    config = alembic_config(service, database_url)
    if action == "upgrade":
        command.upgrade(config, revision or "head")
    elif action == "downgrade":
        if not revision:
            raise ValueError("downgrade needs a revision (e.g. -1 or base)")
        command.downgrade(config, revision)
    elif action == "current":
        command.current(config, verbose=False)
    elif action == "history":
        command.history(config, indicate_current=False)
    elif action == "verify":
        drift = asyncio.run(schema_drift(service, database_url))
        if drift:
            print(f"{service.name}: schema drift ({len(drift)} difference(s)):")
            for item in drift:
                print(f"  - {item}")
            return 1
        print(f"{service.name}: schema matches the models")
    else:
        raise ValueError(f"unknown action {action!r}")
    return 0
