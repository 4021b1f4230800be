"""Certification runs in the sandbox, for every service that serves a partner's terminals (portal, device-auth).

Requests that carry `SmartPOS-Certification-Run: crt_…` have the events they write tagged with the run
(`certification_run` in the envelope, from the `events.certification_run` context variable), so the console judges
the run's cases from the platform's own events. A malformed value tags nothing. Production never mounts the
middleware: there the header means nothing. `observe` writes the few events that exist only for a run — what a
request did that changes no resource (an idempotent replay, a resent offline batch, a token renewed): they are
evidence, and outside a run nobody needs them.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

import orjson
from starlette.types import ASGIApp, Receive, Scope, Send

from .events import NOTIFY_CHANNEL, certification_run, envelope
from .ids import new_id
from .pg import Db

HEADER = b"smartpos-certification-run"
RUN_ID = re.compile(rb"^crt_[0-9A-HJKMNP-TV-Z]{26}$")

INSERT = f"""
WITH o AS (
  INSERT INTO outbox (id, type, merchant_id, store_id, subject, version, payload, created_at)
  VALUES ($1, $2, $3, $4, $5, 1, $6::jsonb, $7) RETURNING 1
)
SELECT pg_notify('{NOTIFY_CHANNEL}', '') FROM o"""  # noqa: S608 (constants only)


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


async def observe(
    db: Db,
    *,
    source: str,
    event_type: str,
    merchant_id: str,
    store_id: str | None,
    subject: str,
    data: dict[str, Any],
    now: datetime,
) -> bool:
    """Record an observation of the current certification run as an event (outbox, published by the relay);
    nothing outside a run. False when there was no run."""
    if certification_run.get() is None:
        return False
    event_id = new_id("evt")
    body = envelope(
        event_id=event_id,
        event_type=event_type,
        source=source,
        time=now,
        merchant_id=merchant_id,
        store_id=store_id,
        subject=subject,
        version=1,
        data=data,
    )
    await db.execute(INSERT, event_id, event_type, merchant_id, store_id, subject, orjson.dumps(body).decode(), now)
    return True
