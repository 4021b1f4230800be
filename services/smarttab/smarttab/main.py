"""The smarttab service: live store views and the WebSocket update hub, built from events."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from smartpos_shared.app import create_app
from smartpos_shared.auth import JwksLoader, token_verification
from smartpos_shared.projector import EventProjector
from smartpos_shared.web import pages_extension

from .hub.endpoints import router as hub_router
from .hub.hub import Hub
from .models import DeadLetter
from .projections.consumer import ORDER_EVENTS, STORE_EVENTS, apply_order_event, apply_store_event
from .settings import SmarttabSettings
from .web.endpoints import STATIC, session_router
from .web.endpoints import pages as dashboard_pages
from .web.endpoints import router as dashboard_router


@asynccontextmanager
async def live(app: FastAPI) -> AsyncIterator[None]:
    settings: SmarttabSettings = app.state.settings
    app.state.hub = Hub(
        app.state.nats,
        max_queue=settings.ws_queue_size,
        replay_limit=settings.replay_limit,
        heartbeat_seconds=settings.heartbeat_seconds,
    )
    projectors = [
        EventProjector(
            app.state.sessionmaker,
            app.state.nats,
            subject=subject,
            durable=durable,
            apply=apply,
            dead_letter_model=DeadLetter,
            start_at_new=settings.projector_start == "new",
            inactive_seconds=settings.projector_inactive_seconds,
        )
        for subject, durable, apply in (
            (ORDER_EVENTS, settings.projector_durable, apply_order_event),
            (STORE_EVENTS, f"{settings.projector_durable}-stores", apply_store_event),
        )
    ]
    await app.state.hub.start()
    for projector in projectors:
        await projector.start()
    try:
        yield
    finally:
        for projector in projectors:
            await projector.stop()
        await app.state.hub.stop()


def build_app(settings: SmarttabSettings | None = None, jwks_loader: JwksLoader | None = None) -> FastAPI:
    settings = settings or SmarttabSettings()
    app = create_app(
        settings,
        title="SmartPOS smarttab",
        description="SmartPOS core smarttab: live store views, the WebSocket update hub and the merchant dashboard.",
        routers=[hub_router, dashboard_router, session_router],
        extensions=[token_verification(jwks_loader), live, pages_extension(dashboard_pages)],
        access_log=settings.access_log,
    )
    app.mount("/dashboard/static", StaticFiles(directory=STATIC), name="dashboard-static")
    return app


app = build_app()
