"""The audit trail of what other services change on operators' say-so: configuration change requests (portal,
`change_request.*` events: proposed, approved, applied, failed, reverted) are appended to the console's audit log as
they arrive (durable `console-audit`, every environment), each once (by its event id), with the actor the event
names (an admin; `system`/`scheduler` for a scheduled apply).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from smartpos_shared.projector import projecting

from ..models import DeadLetter
from ..settings import ConsoleSettings
from . import log

SUBJECT = "smartpos.*.change_request.>"
SEEN = "SELECT 1 FROM audit_log WHERE action = :action AND subject = :subject AND detail ->> 'event_id' = :event_id"


async def apply_event(session: AsyncSession, event: dict[str, Any], stream_seq: int) -> None:
    action, subject = str(event["type"]), str(event.get("subject", ""))
    params = {"action": action, "subject": subject, "event_id": str(event["id"])}
    if (await session.execute(text(SEEN), params)).first() is not None:
        return  # redelivered: appended already
    data = event.get("data") or {}
    actor = data.get("actor") or {"role": "system", "id": "scheduler"}
    detail = {
        "event_id": str(event["id"]),
        "merchant_id": event.get("merchant_id"),
        "status": data.get("status"),
        "checksum": data.get("checksum"),
        "changes": len(data.get("diff") or []),
        **({"failure": data["failure"]} if data.get("failure") else {}),
    }
    await log.append_as(
        session,
        str(actor["role"]),
        str(actor["id"]),
        action,
        subject,
        detail,
        datetime.fromisoformat(str(event["time"])),
    )


@asynccontextmanager
async def audit_projection(app: FastAPI) -> AsyncIterator[None]:
    settings: ConsoleSettings = app.state.settings
    async with projecting(
        app,
        subject=SUBJECT,
        durable=settings.audit_projector_durable,
        apply=apply_event,
        dead_letter_model=DeadLetter,
        start_at_new=settings.audit_projector_start == "new",
        inactive_seconds=settings.audit_projector_inactive_seconds,
    ):
        yield
