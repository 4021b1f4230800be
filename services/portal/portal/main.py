"""The portal service: orders, bills, payments, catalog, merchants and stores."""

from __future__ import annotations

from fastapi import FastAPI

from smartpos_shared.app import create_app

from .settings import PortalSettings


def build_app(settings: PortalSettings | None = None) -> FastAPI:
    settings = settings or PortalSettings()
    return create_app(
        settings,
        title="SmartPOS portal",
        description="SmartPOS core portal: orders, bills, payments, catalog, merchants and stores.",
        access_log=settings.access_log,
    )


app = build_app()
