"""The smarttab service: live store views and the WebSocket update hub, built from events."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from smartpos_shared.app import create_app
from smartpos_shared.auth import JwksLoader, token_verification

from .hub.endpoints import router as hub_router
from .hub.hub import Hub
from .projections.consumer import Projector
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
    app.state.projector = Projector(
        app.state.sessionmaker,
        app.state.nats,
        durable=settings.projector_durable,
        start_at_new=settings.projector_start == "new",
        inactive_seconds=settings.projector_inactive_seconds,
    )
    await app.state.hub.start()
    await app.state.projector.start()
    try:
        yield
    finally:
        await app.state.projector.stop()
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
