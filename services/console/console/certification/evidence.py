"""The evidence of certification runs: the platform's events, projected from JetStream (sandbox only).

An event belongs to a run when its envelope says so (`certification_run`: the portal tags the events of requests
that carry `SmartPOS-Certification-Run`), or when it is about a resource an event of the run named — a gateway
webhook's `payment.succeeded` carries no run, but its payment was created in one. Events of a completed run, or
naming a run that does not exist, are ignored.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

import orjson
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from smartpos_shared.projector import projecting
from smartpos_shared.settings import Environment

from ..models import DeadLetter
from ..settings import ConsoleSettings

EVERY_EVENT = "smartpos.>"
RUNNING = "SELECT 1 FROM certification_runs WHERE id = :run AND status = 'running'"
OWNER = """
SELECT r.run_id FROM certification_resources r JOIN certification_runs c ON c.id = r.run_id AND c.status = 'running'
WHERE r.resource_id = ANY(CAST(:names AS text[])) LIMIT 1"""
EVIDENCE = """
INSERT INTO certification_evidence (event_id, run_id, type, subject, time, data)
VALUES (:event_id, :run, :type, :subject, :time, CAST(:data AS jsonb)) ON CONFLICT (event_id) DO NOTHING"""
RESOURCES = """
INSERT INTO certification_resources (resource_id, run_id)
SELECT name, :run FROM unnest(CAST(:names AS text[])) AS name ON CONFLICT (resource_id) DO NOTHING"""


def _names(event: dict[str, Any]) -> list[str]:
    data = event.get("data") or {}
    found = [event.get("subject"), *(data.get(k) for k in ("id", "order_id", "bill_id", "payment_id"))]
    return sorted({name for name in found if isinstance(name, str) and name})


async def apply_event(session: AsyncSession, event: dict[str, Any], stream_seq: int) -> None:
    names = _names(event)
    run = event.get("certification_run")
    if isinstance(run, str):
        if (await session.execute(text(RUNNING), {"run": run})).first() is None:
            return
    else:
        run = (await session.execute(text(OWNER), {"names": names})).scalar_one_or_none()
        if run is None:
            return
    await session.execute(
        text(EVIDENCE),
        {
            "event_id": str(event["id"]),
            "run": run,
            "type": str(event["type"]),
            "subject": str(event.get("subject", "")),
            "time": datetime.fromisoformat(str(event["time"])),
            "data": orjson.dumps(event.get("data") or {}).decode(),
        },
    )
    await session.execute(text(RESOURCES), {"run": run, "names": names})


@asynccontextmanager
async def evidence_projection(app: FastAPI) -> AsyncIterator[None]:
    settings: ConsoleSettings = app.state.settings
    if settings.env is Environment.production:  # certification happens in the sandbox
        yield
        return
    async with projecting(
        app,
        subject=EVERY_EVENT,
        durable=settings.evidence_projector_durable,
        apply=apply_event,
        dead_letter_model=DeadLetter,
        start_at_new=settings.evidence_projector_start == "new",
        inactive_seconds=settings.evidence_projector_inactive_seconds,
    ):
        yield
