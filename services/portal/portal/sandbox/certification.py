"""Certification runs in the sandbox: requests that carry `SmartPOS-Certification-Run: crt_…` have the events they
write tagged with the run (`certification_run` in the envelope), so the console judges the run's cases from the
platform's own events. A malformed value tags nothing. Production ignores the header (the middleware is sandbox
only); events caused later by the gateway (its webhooks) are attributed by the console through the resources they
name."""

from __future__ import annotations

import re

from starlette.types import ASGIApp, Receive, Scope, Send

from smartpos_shared.events import certification_run

HEADER = b"smartpos-certification-run"
RUN_ID = re.compile(rb"^crt_[0-9A-HJKMNP-TV-Z]{26}$")


class CertificationRunMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        run = None
        if scope["type"] == "http":
            for name, value in scope["headers"]:
                if name == HEADER and RUN_ID.match(value):
                    run = value.decode()
        if run is None:
            await self.app(scope, receive, send)
            return
        token = certification_run.set(run)
        try:
            await self.app(scope, receive, send)
        finally:
            certification_run.reset(token)
