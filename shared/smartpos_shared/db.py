"""Async engine, declarative base with deterministic constraint names, and the per-request transaction."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any

import structlog
from fastapi import Depends, Request
from sqlalchemy import DateTime, MetaData, event, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase

_log = structlog.get_logger("smartpos.db")

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


class ServiceBase(DeclarativeBase):
    """Each service subclasses this once, so each owns a MetaData (its database, its Alembic environment)."""

    __abstract__ = True
    type_annotation_map = {datetime: DateTime(timezone=True)}


def service_metadata() -> MetaData:
    return MetaData(naming_convention=NAMING_CONVENTION)


def create_engine(url: str, *, pool_size: int = 10, max_overflow: int = 10) -> AsyncEngine:
    return create_async_engine(
        url,
        pool_size=pool_size,
        max_overflow=max_overflow,
        # No pool_pre_ping: it costs a round trip on every request. A connection that died is invalidated by the
        # dialect on first use (that request answers 503, see errors.py) and replaced; pool_recycle bounds age.
        pool_recycle=1800,
        # Error messages would otherwise carry bound parameters (a client secret's hash, a customer's data)
        # into logs and tracebacks.
        hide_parameters=True,
        connect_args={
            "timeout": 5,
            "command_timeout": 30,
            "server_settings": {"application_name": "smartpos"},
        },
    )


def count_statements(engine: AsyncEngine, counter: Any) -> None:
    """Increment `counter` (a prometheus Counter child) for every statement this engine sends."""

    def on_execute(*_: object) -> None:
        counter.inc()

    event.listen(engine.sync_engine, "before_cursor_execute", on_execute)


def make_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)


AfterCommit = Callable[[], Awaitable[None]]


@dataclass(eq=False)
class Transaction:
    """One request's transaction (SQLAlchemy session) and what must happen once it has committed."""

    session: AsyncSession
    actions: list[AfterCommit] = field(default_factory=list)
    events_written: bool = False

    def after_commit(self, action: AfterCommit) -> None:
        """Run `action` once the transaction has committed (cache invalidation, calls to the gateway): nothing
        outside PostgreSQL may see a change that could still roll back."""
        self.actions.append(action)


async def run_after_commit(actions: list[AfterCommit]) -> None:
    for action in actions:
        try:
            await action()
        except Exception as exc:  # the commit stands; a failed side effect is logged, never turned into a 500
            _log.warning("after_commit_failed", error=repr(exc))


async def _request_transaction(request: Request) -> AsyncIterator[Transaction]:
    """One transaction per request: committed when the endpoint returns, rolled back if it raises.

    Used with `scope="function"` so the commit happens before the response is sent: a failed commit is an
    error response, never a 2xx for a change that did not persist.
    """
    sessionmaker: async_sessionmaker[AsyncSession] = request.app.state.sessionmaker
    wake: Callable[[], None] | None = getattr(request.app.state, "outbox_wake", None)
    async with sessionmaker() as session:
        transaction = Transaction(session)
        async with session.begin():
            yield transaction
            if transaction.events_written and wake is None:
                # No relay in this process: wake the relay processes (LISTEN smartpos_outbox) at commit.
                await session.execute(text("SELECT pg_notify('smartpos_outbox', '')"))
        await run_after_commit(transaction.actions)
        if transaction.events_written and wake is not None:
            wake()  # this process's relay publishes its own commits; no NOTIFY round trip needed


async def _request_session(
    transaction: Annotated[Transaction, Depends(_request_transaction, scope="function")],
) -> AsyncSession:
    return transaction.session


TransactionDep = Annotated[Transaction, Depends(_request_transaction, scope="function")]
SessionDep = Annotated[AsyncSession, Depends(_request_session, scope="function")]
