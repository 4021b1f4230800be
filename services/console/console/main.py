"""The console service (port 8003): partners, integrations, certification, rollouts and the audit log.

It serves partner and admin tokens only (portal, smarttab and device-auth refuse partner tokens): whatever a
partner does here, it never reads a merchant's data."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from smartpos_shared.app import create_app
from smartpos_shared.auth import JwksLoader, Role, token_verification
from smartpos_shared.events import outbox_relay_extension
from smartpos_shared.web import pages_extension

from .audit.endpoints import router as audit_router
from .audit.projection import audit_projection
from .certification.endpoints import router as certification_router
from .certification.evidence import evidence_projection
from .certification.keys_endpoints import router as report_keys_router
from .certification.report import ReportKeys
from .integrations.endpoints import router as integrations_router
from .models import OutboxEvent
from .rollouts.endpoints import router as rollouts_router
from .rollouts.health import pilot_health_projection
from .settings import ConsoleSettings
from .web.endpoints import STATIC, session_router
from .web.endpoints import pages as console_pages
from .web.endpoints import router as pages_router

ROLES = frozenset({Role.partner, Role.admin})


def report_keys(settings: ConsoleSettings) -> Any:
    @asynccontextmanager
    async def extension(app: FastAPI) -> AsyncIterator[None]:
        app.state.report_keys = ReportKeys(settings.key_encryption_key)
        yield

    return extension


def build_app(settings: ConsoleSettings | None = None, jwks_loader: JwksLoader | None = None) -> FastAPI:
    settings = settings or ConsoleSettings()
    app = create_app(
        settings,
        title="SmartPOS console",
        description="SmartPOS console: partners' integrations, certification, rollouts and the audit log.",
        routers=[
            integrations_router,
            certification_router,
            report_keys_router,
            rollouts_router,
            audit_router,
            pages_router,
            session_router,
        ],
        extensions=[
            token_verification(jwks_loader, roles=ROLES),
            outbox_relay_extension(OutboxEvent),
            evidence_projection,
            pilot_health_projection,
            audit_projection,
            report_keys(settings),
            pages_extension(console_pages),
        ],
        access_log=settings.access_log,
    )
    app.mount("/console/static", StaticFiles(directory=STATIC), name="console-static")
    return app


app = build_app()
