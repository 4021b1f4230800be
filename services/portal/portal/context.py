"""What a portal request works with, typed: built once per process (`PortalServices`) and once per request
(`RequestContext`), handed to services explicitly — no string keys on a session, no `app.state` look-ups in
business code."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated

import asyncpg
from fastapi import Depends, Request

from smartpos_shared.auth import BearerCredentials, Principal, principal_of
from smartpos_shared.cache import VersionedCache
from smartpos_shared.db import AfterCommit, run_after_commit
from smartpos_shared.pg import Db, StatementSink

from .config.methods import PaymentMethods
from .pgw.gateway import PaymentGateway
from .sandbox.clocks import TestClocks
from .settings import PortalSettings

Clock = Callable[[], float]


@dataclass(frozen=True, slots=True)
class PortalServices:
    """The process's collaborators, created at startup (main.py)."""

    settings: PortalSettings
    pool: asyncpg.Pool
    cache: VersionedCache
    gateway: PaymentGateway
    statements: StatementSink
    clock: Clock  # business time: what orders, payments and business days are stamped with
    # Wakes this process's outbox relay after a commit that wrote events; None when the relay runs as its own
    # process (then the write statement itself NOTIFYs, delivered at commit).
    wake_relay: Callable[[], None] | None
    # Real time, for what must never follow a moved business clock: webhook signature timestamps (and tokens).
    real_clock: Clock = time.time
    # The sandbox's per-merchant test clocks (portal/sandbox/clocks.py); None in production.
    test_clocks: TestClocks | None = None
    payment_methods: PaymentMethods | None = None  # what each merchant's configuration enables (config/methods.py)

    def business_now(self, merchant_id: str | None) -> datetime:
        """Business time for a merchant: its test clock's frozen time while it has one, else the clock."""
        if merchant_id is not None and self.test_clocks is not None:
            frozen = self.test_clocks.time_of(merchant_id)
            if frozen is not None:
                return datetime.fromtimestamp(frozen, UTC)
        return datetime.fromtimestamp(self.clock(), UTC)


@dataclass(eq=False, slots=True)
class RequestContext:
    services: PortalServices
    db: Db
    principal: Principal | None
    actions: list[AfterCommit] = field(default_factory=list)

    @property
    def cache(self) -> VersionedCache:
        return self.services.cache

    @property
    def gateway(self) -> PaymentGateway:
        return self.services.gateway

    @property
    def notify_at_commit(self) -> bool:
        """Whether the write statement must NOTIFY the relays (none runs in this process)."""
        return self.services.wake_relay is None

    def now(self, merchant_id: str | None = None) -> datetime:
        """Business time for the merchant the work is for (by default the caller's own: admins name it)."""
        if merchant_id is None and self.principal is not None:
            merchant_id = self.principal.merchant_id
        return self.services.business_now(merchant_id)

    def after_commit(self, action: AfterCommit) -> None:
        """Run `action` once the change is committed (cache, gateway): nothing outside PostgreSQL may see a
        change that could still roll back."""
        self.actions.append(action)

    async def committed(self, *, events: bool = True) -> None:
        """A change is durable (after COMMIT, or after a single write statement outside a transaction)."""
        actions, self.actions = self.actions, []
        await run_after_commit(actions)
        if events and self.services.wake_relay is not None:
            self.services.wake_relay()


def services_of(request: Request) -> PortalServices:
    services: PortalServices = request.app.state.services
    return services


async def _context(request: Request, credentials: BearerCredentials) -> AsyncIterator[RequestContext]:
    principal = await principal_of(request, credentials)
    services = services_of(request)
    context = RequestContext(services, Db(services.pool, services.statements), principal)
    try:
        yield context
    finally:
        await context.db.release()


async def _system_context(request: Request) -> AsyncIterator[RequestContext]:
    """For callers without a token (the gateway's webhook): the tenant is resolved from the resource."""
    services = services_of(request)
    context = RequestContext(services, Db(services.pool, services.statements), None)
    try:
        yield context
    finally:
        await context.db.release()


ContextDep = Annotated[RequestContext, Depends(_context, scope="function")]
SystemContextDep = Annotated[RequestContext, Depends(_system_context, scope="function")]
