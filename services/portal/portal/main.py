"""The portal service: orders, bills, payments, catalog, merchants and stores; the payment gateway adapter and
its webhooks."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from smartpos_shared.app import create_app
from smartpos_shared.auth import JwksLoader, token_verification
from smartpos_shared.cache import VersionedCache
from smartpos_shared.events import outbox_relay_extension
from smartpos_shared.pg import pool_extension
from smartpos_shared.settings import Environment

from .catalog.endpoints import router as catalog_router
from .checkout import endpoints as checkout
from .closeout.endpoints import router as closeout_router
from .config.endpoints import router as config_router
from .config.methods import CHANNEL as METHODS_CHANNEL
from .config.methods import PaymentMethods
from .context import PortalServices
from .credit.endpoints import router as credit_router
from .credit.programme_endpoints import router as programme_router
from .followers import Follower
from .merchants.endpoints import router as merchants_router
from .models import OutboxEvent
from .pgw.gateway import gateway_for
from .pgw.webhooks import router as webhooks_router
from .sandbox.certification import CertificationRunMiddleware
from .sandbox.clocks import ClockFollower, TestClocks
from .sandbox.endpoints import router as test_clocks_router
from .settings import PortalSettings


@asynccontextmanager
async def commerce(app: FastAPI) -> AsyncIterator[None]:
    """The collaborators request handlers get (`context.PortalServices`), created once per process."""
    settings: PortalSettings = app.state.settings
    gateway = gateway_for(settings, app.state.redis)
    relay = getattr(app.state, "outbox_relay", None)
    # Business time (timestamps of orders and payments, business days) may run ahead of the clock that checks
    # tokens (tests move it; the sandbox's test clocks will): tokens always keep the real one.
    business_clock = getattr(app.state, "business_clock", None) or app.state.clock
    # The sandbox's per-merchant test clocks, followed from the database (none in production).
    sandbox = settings.env is not Environment.production
    test_clocks = TestClocks() if sandbox else None
    follower = ClockFollower(settings.database_url, test_clocks) if test_clocks is not None else None
    if follower is not None:
        await follower.start()
    payment_methods = PaymentMethods()
    methods_follower = Follower(settings.database_url, METHODS_CHANNEL, payment_methods)
    await methods_follower.start()
    app.state.services = PortalServices(
        settings=settings,
        pool=app.state.pg_pool,
        cache=VersionedCache(app.state.redis),
        gateway=gateway,
        statements=app.state.pg_statements,
        clock=lambda: float(business_clock()),
        real_clock=lambda: float(app.state.clock()),
        wake_relay=relay.wake if relay is not None else None,
        test_clocks=test_clocks,
        payment_methods=payment_methods,
    )
    try:
        yield
    finally:
        await methods_follower.stop()
        if follower is not None:
            await follower.stop()
        await gateway.close()


def build_app(settings: PortalSettings | None = None, jwks_loader: JwksLoader | None = None) -> FastAPI:
    settings = settings or PortalSettings()
    app = create_app(
        settings,
        title="SmartPOS portal",
        description="SmartPOS core portal: orders, bills, payments, catalog, merchants and stores.",
        routers=[
            merchants_router,
            catalog_router,
            checkout.orders,
            checkout.bills,
            checkout.payments,
            checkout.refunds,
            checkout.sync,
            closeout_router,
            credit_router,
            programme_router,
            config_router,
            webhooks_router,
            # Sandbox-only endpoints do not exist in production (404), API.md "Sandbox".
            *([test_clocks_router] if settings.env is not Environment.production else []),
        ],
        extensions=[
            pool_extension,
            token_verification(jwks_loader),
            *([outbox_relay_extension(OutboxEvent)] if settings.relay_in_process else []),
            commerce,  # after the relay: it hands the relay's wake-up to request handlers
        ],
        access_log=settings.access_log,
    )
    if settings.env is not Environment.production:
        app.add_middleware(CertificationRunMiddleware)  # sandbox: events of a certification run carry its id
    return app


app = build_app()
