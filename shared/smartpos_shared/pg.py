"""Plain asyncpg for hot paths: a pool, and one request's lazily acquired connection with counted statements.

The ORM (and even SQLAlchemy Core on an async connection) costs about three times the CPU of asyncpg per
statement (docs/adr/0002); on a path that runs a few statements per request and wants to stay under a
millisecond, that is most of the budget. Repositories on such paths write SQL, keep it in one place, and bind
every tenant-owned query to a merchant.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Annotated, Any, Protocol

import asyncpg
from fastapi import Depends, FastAPI, Request


class Counter(Protocol):
    def inc(self, amount: float = 1) -> None: ...


class StatementSink(Protocol):
    """Told of every statement sent: production counts them (metrics); tests also read them (tenancy check)."""

    def record(self, sql: str) -> None: ...


class CountedStatements:
    def __init__(self, counter: Counter) -> None:
        self.counter = counter

    def record(self, sql: str) -> None:
        self.counter.inc()


async def _keep_session(connection: asyncpg.Connection) -> None:
    """Request code changes no session state (no SET, LISTEN, cursors or session advisory locks), so a released
    connection needs no `RESET ALL` round trip; asyncpg still rolls back a transaction left open."""


def asyncpg_dsn(sqlalchemy_url: str) -> str:
    return sqlalchemy_url.replace("postgresql+asyncpg://", "postgresql://", 1)


async def create_pool(url: str, *, min_size: int = 1, max_size: int = 10) -> asyncpg.Pool:
    return await asyncpg.create_pool(
        asyncpg_dsn(url),
        min_size=min_size,
        max_size=max_size,
        reset=_keep_session,
        command_timeout=30,
        timeout=5,
        server_settings={"application_name": "smartpos"},
    )


class Db:
    """One request's database access: a pooled connection taken on first use and given back by `release`."""

    __slots__ = ("_connection", "_pool", "_statements", "_transaction")

    def __init__(self, pool: asyncpg.Pool, statements: StatementSink) -> None:
        self._pool = pool
        self._statements = statements
        self._connection: asyncpg.pool.PoolConnectionProxy | None = None
        self._transaction: asyncpg.transaction.Transaction | None = None

    async def _conn(self) -> Any:
        if self._connection is None:
            self._connection = await self._pool.acquire()
        return self._connection

    async def fetch(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        self._statements.record(sql)
        rows: list[asyncpg.Record] = await (await self._conn()).fetch(sql, *args)
        return rows

    async def fetchrow(self, sql: str, *args: Any) -> asyncpg.Record | None:
        self._statements.record(sql)
        row: asyncpg.Record | None = await (await self._conn()).fetchrow(sql, *args)
        return row

    async def fetchval(self, sql: str, *args: Any) -> Any:
        self._statements.record(sql)
        return await (await self._conn()).fetchval(sql, *args)

    async def execute(self, sql: str, *args: Any) -> str:
        self._statements.record(sql)
        status: str = await (await self._conn()).execute(sql, *args)
        return status

    async def executemany(self, sql: str, args: Sequence[Sequence[Any]]) -> None:
        for _ in args:
            self._statements.record(sql)
        await (await self._conn()).executemany(sql, args)

    @property
    def in_transaction(self) -> bool:
        return self._transaction is not None

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[None]:
        """BEGIN … COMMIT (ROLLBACK if the block raises). Statements outside one run in autocommit."""
        if self._transaction is not None:
            raise RuntimeError("already in a transaction")
        transaction = (await self._conn()).transaction()
        await transaction.start()
        self._transaction = transaction
        try:
            yield
        except BaseException:
            self._transaction = None
            await transaction.rollback()
            raise
        self._transaction = None
        await transaction.commit()

    async def release(self) -> None:
        if self._connection is not None:
            connection, self._connection = self._connection, None
            await self._pool.release(connection)


def pool_extension(app: FastAPI) -> AbstractAsyncContextManager[None]:
    """App extension: the process's asyncpg pool (`app.state.pg_pool`) and its statement sink."""

    @contextlib.asynccontextmanager
    async def extension() -> AsyncIterator[None]:
        settings = app.state.settings
        # min_size=0: a service starts while its database is down (/readyz says so) and connects on first use.
        app.state.pg_pool = await create_pool(settings.database_url, min_size=0, max_size=settings.db_pool_size)
        app.state.pg_statements = CountedStatements(app.state.metrics.db_statement)
        try:
            yield
        finally:
            await app.state.pg_pool.close()

    return extension()


async def _request_db(request: Request) -> AsyncIterator[Db]:
    db = Db(request.app.state.pg_pool, request.app.state.pg_statements)
    try:
        yield db
    finally:
        await db.release()


DbDep = Annotated[Db, Depends(_request_db, scope="function")]
"""A request's lazily acquired connection (statements outside `transaction()` run in autocommit)."""
