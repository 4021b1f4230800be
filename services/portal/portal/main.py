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

from .bills.endpoints import router as bills_router
from .catalog.endpoints import router as catalog_router
from .merchants.endpoints import router as merchants_router
from .models import OutboxEvent
from .orders.endpoints import router as orders_router
from .payments.endpoints import router as payments_router
from .pgw.gateway import gateway_for
from .pgw.webhooks import router as webhooks_router
from .settings import PortalSettings


@asynccontextmanager
async def commerce(app: FastAPI) -> AsyncIterator[None]:
    app.state.cache = VersionedCache(app.state.redis)
    app.state.gateway = gateway_for(app.state.settings)
    try:
        yield
    finally:
        await app.state.gateway.close()


def build_app(settings: PortalSettings | None = None, jwks_loader: JwksLoader | None = None) -> FastAPI:
    settings = settings or PortalSettings()
    return create_app(
        settings,
        title="SmartPOS portal",
        description="SmartPOS core portal: orders, bills, payments, catalog, merchants and stores.",
        routers=[merchants_router, catalog_router, orders_router, bills_router, payments_router, webhooks_router],
        extensions=[
            token_verification(jwks_loader),
            commerce,
            *([outbox_relay_extension(OutboxEvent)] if settings.relay_in_process else []),
        ],
        access_log=settings.access_log,
    )


app = build_app()
