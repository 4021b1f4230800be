"""The device-auth service: OAuth 2.0 authorization server for terminals and API clients."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from smartpos_shared.app import create_app
from smartpos_shared.auth import token_verification
from smartpos_shared.certification import CertificationRunMiddleware
from smartpos_shared.events import outbox_relay_extension
from smartpos_shared.pg import pool_extension
from smartpos_shared.settings import Environment

from .clients.endpoints import router as clients_router
from .crypto import Vault
from .devices.endpoints import router as devices_router
from .keys.endpoints import router as keys_router
from .keys.service import KeyRing
from .models import OutboxEvent
from .rollouts.projection import rollout_projection
from .settings import AuthSettings
from .stores.projection import store_projection
from .tokens.endpoints import router as tokens_router
from .tokens.service import TokenService
from .users.endpoints import router as users_router


@asynccontextmanager
async def keys_and_tokens(app: FastAPI) -> AsyncIterator[None]:
    settings: AuthSettings = app.state.settings
    vault = Vault(settings.key_encryption_key)
    app.state.vault = vault
    app.state.keyring = KeyRing(app.state.sessionmaker, vault, settings.retired_key_grace_seconds)
    app.state.token_service = TokenService(settings, app.state.keyring, app.state.redis)
    # The database may not answer yet: start anyway (/readyz says so) and create the first key when it does.
    task = asyncio.create_task(app.state.keyring.ensure_key_eventually(), name="ensure-signing-key")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def _local_jwks(app: FastAPI) -> Any:
    async def load() -> dict[str, Any]:
        jwks: dict[str, Any] = await app.state.keyring.jwks()
        return jwks

    return load


def build_app(settings: AuthSettings | None = None) -> FastAPI:
    settings = settings or AuthSettings()
    app: FastAPI

    @asynccontextmanager
    async def verification(app_: FastAPI) -> AsyncIterator[None]:
        # device-auth verifies its own tokens (for its admin endpoints) from its own key ring, not over HTTP.
        async with token_verification(_local_jwks(app_), refresh_interval=0)(app_):
            yield

    app = create_app(
        settings,
        title="SmartPOS device-auth",
        description="SmartPOS core device-auth: the OAuth 2.0 authorization server for terminals and API clients.",
        routers=[tokens_router, devices_router, clients_router, keys_router, users_router],
        extensions=[
            pool_extension,
            keys_and_tokens,
            verification,
            store_projection,
            rollout_projection,
            outbox_relay_extension(OutboxEvent),
        ],
        access_log=settings.access_log,
    )
    if settings.env is not Environment.production:
        app.add_middleware(CertificationRunMiddleware)  # sandbox: tokens a certification run's terminals get
    return app


app = build_app()
