"""What every service's Alembic env.py does: online (async, asyncpg) or offline (SQL script) migrations,
one transaction per revision, timeouts set for each, against the service's own database and version table."""

from __future__ import annotations

import asyncio
import os

from alembic import context
from sqlalchemy import MetaData, pool, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.ext.asyncio import create_async_engine

# Defaults for every revision; a revision may SET LOCAL other values itself (the template does).
LOCK_TIMEOUT = os.environ.get("SMARTPOS_MIGRATION_LOCK_TIMEOUT", "2s")
STATEMENT_TIMEOUT = os.environ.get("SMARTPOS_MIGRATION_STATEMENT_TIMEOUT", "60s")


def _configure(connection: Connection | None, metadata: MetaData, version_table: str, url: str | None = None) -> None:
    context.configure(
        version_table=version_table,
        connection=connection,
        url=url,
        target_metadata=metadata,
        transaction_per_migration=True,
        compare_type=True,
        compare_server_default=True,
        literal_binds=connection is None,
        dialect_opts={"paramstyle": "named"} if connection is None else {},
    )


def run(metadata: MetaData, database_url: str, version_table: str) -> None:
    url = context.config.attributes.get("database_url") or database_url
    if context.is_offline_mode():
        _configure(None, metadata, version_table, url=url)
        with context.begin_transaction():
            context.run_migrations()
        return

    connection = context.config.attributes.get("connection")
    if isinstance(connection, Engine):  # handed in by a test (pytest-alembic)
        with connection.connect() as conn:  # not begin(): Alembic owns the transactions (autocommit blocks)
            _run_sync(conn, metadata, version_table)
            conn.commit()
        return
    if connection is not None:
        _run_sync(connection, metadata, version_table)
        return
    asyncio.run(_run_async(metadata, url, version_table))


def _run_sync(connection: Connection, metadata: MetaData, version_table: str) -> None:
    _configure(connection, metadata, version_table)
    with context.begin_transaction():
        context.run_migrations()


async def _run_async(metadata: MetaData, url: str, version_table: str) -> None:
    engine = create_async_engine(url, poolclass=pool.NullPool)
    async with engine.connect() as connection:
        await connection.run_sync(_run_sync, metadata, version_table)
        await connection.commit()
    await engine.dispose()


def refuse_if_rows(*tables: str) -> None:
    """Called by downgrades that drop tables: refuse, rather than destroy data an operator may not have meant to
    lose. Empty tables (a fresh database, a test) are dropped as usual."""
    if context.is_offline_mode():
        return
    bind = context.get_bind()
    for table in tables:
        exists = bind.execute(text("SELECT to_regclass(:t) IS NOT NULL"), {"t": table}).scalar()
        if exists and bind.execute(text(f'SELECT EXISTS (SELECT 1 FROM "{table}")')).scalar():  # noqa: S608
            raise RuntimeError(
                f"refusing to downgrade: table {table!r} holds rows and this downgrade would drop it; "
                "export or empty it first"
            )
