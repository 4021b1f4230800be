"""The smarttab service: live store views and the WebSocket update hub."""

from __future__ import annotations

from fastapi import FastAPI

from smartpos_shared.app import create_app
from smartpos_shared.auth import token_verification

from .settings import SmarttabSettings


def build_app(settings: SmarttabSettings | None = None) -> FastAPI:
    settings = settings or SmarttabSettings()
    return create_app(
        settings,
        title="SmartPOS smarttab",
        description="SmartPOS core smarttab: live store views and the WebSocket update hub.",
        extensions=[token_verification()],
        access_log=settings.access_log,
    )


app = build_app()
