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
    engine = create_async_engine(url, poolclass=pool.NullPool, hide_parameters=True)
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


def backfill(
    *,
    table: str,
    pending: str,
    batch_sql: str,
    batch_size: int,
    workers: int,
    lock_timeout: str = "2s",
    statement_timeout: str = "60s",
) -> int:
    """Run a keyset backfill over `table`'s rows matching `pending`, split into `workers` key ranges processed
    in parallel, each on its own connection, in short autocommit batches.

    `batch_sql` takes `$1` (ids greater than), `$2` (ids at most; NULL for no bound) and `$3` (batch size), must
    only touch rows matching `pending`, and returns the ids it updated. Re-runnable by construction. Returns the
    number of rows updated. Call it inside `op.get_context().autocommit_block()`.
    """
    import asyncio
    import threading

    import asyncpg

    bind = context.get_bind()
    url = bind.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
    total = bind.execute(text(f"SELECT count(*) FROM {table} WHERE {pending}")).scalar() or 0  # noqa: S608
    if total == 0:
        return 0
    workers = max(1, min(workers, total // batch_size + 1))
    bounds: list[str | None] = [""]
    for k in range(1, workers):
        bounds.append(
            bind.execute(
                text(f"SELECT id FROM {table} WHERE {pending} ORDER BY id OFFSET :o LIMIT 1"),  # noqa: S608
                {"o": total * k // workers},
            ).scalar()
        )
    bounds.append(None)
    updated = [0] * workers
    errors: list[BaseException] = []

    async def work(index: int, after: str, upto: str | None) -> None:
        conn = await asyncpg.connect(url)
        try:
            await conn.execute(f"SET lock_timeout = '{lock_timeout}'; SET statement_timeout = '{statement_timeout}'")
            while True:
                ids = [row[0] for row in await conn.fetch(batch_sql, after, upto, batch_size)]
                if not ids:
                    return
                updated[index] += len(ids)
                after = max(ids)
        finally:
            await conn.close()

    async def all_workers() -> None:
        await asyncio.gather(*(work(i, bounds[i] or "", bounds[i + 1]) for i in range(workers)))

    def run() -> None:
        try:
            asyncio.run(all_workers())
        except BaseException as exc:  # re-raised in the migration's thread
            errors.append(exc)

    # Alembic runs this synchronously (possibly inside an event loop's greenlet): use a thread of our own.
    thread = threading.Thread(target=run, name=f"backfill-{table}")
    thread.start()
    thread.join()
    if errors:
        raise errors[0]
    return sum(updated)
