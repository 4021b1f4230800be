"""The device-auth service: OAuth 2.0 authorization server for terminals and API clients."""

from __future__ import annotations

from fastapi import FastAPI
from smartpos_shared.app import create_app

from .settings import AuthSettings


def build_app(settings: AuthSettings | None = None) -> FastAPI:
    settings = settings or AuthSettings()
    return create_app(
        settings,
        title="SmartPOS device-auth",
        description="SmartPOS core device-auth: OAuth 2.0 authorization server for terminals and API clients.",
        access_log=settings.access_log,
    )


app = build_app()
