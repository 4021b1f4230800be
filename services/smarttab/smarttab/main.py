"""The smarttab service: live store views and the WebSocket update hub, built from events."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from smartpos_shared.app import create_app
from smartpos_shared.auth import JwksLoader, token_verification
from smartpos_shared.projector import EventProjector

from .hub.endpoints import router as hub_router
from .hub.hub import Hub
from .models import DeadLetter
from .projections.consumer import ORDER_EVENTS, STORE_EVENTS, apply_order_event, apply_store_event
from .settings import SmarttabSettings


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
    return create_app(
        settings,
        title="SmartPOS smarttab",
        description="SmartPOS core smarttab: live store views and the WebSocket update hub.",
        routers=[hub_router],
        extensions=[token_verification(jwks_loader), live],
        access_log=settings.access_log,
    )


app = build_app()
