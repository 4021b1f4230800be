"""Rollouts as device-auth knows them: projected from the console's `rollout.*` events.

The token endpoint reads them (devices/repository.py `TOKEN_DEVICE`): a device of an integration gets tokens only
where a rollout enables it. An event is applied if it is newer than what is known (its `version`), so a replay or
an older copy changes nothing; a change reaches every device-auth process within the projector's latency.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from smartpos_shared.projector import projecting

from ..models import DeadLetter
from ..settings import AuthSettings

ROLLOUT_EVENTS = "smartpos.*.rollout.*"
UPSERT = """
INSERT INTO integration_rollouts (rollout_id, integration_id, merchant_id, status, version, updated_at)
VALUES (:rollout_id, :integration_id, :merchant_id, :status, :version, :now)
ON CONFLICT (rollout_id) DO UPDATE SET status = EXCLUDED.status, version = EXCLUDED.version,
    updated_at = EXCLUDED.updated_at
WHERE integration_rollouts.version < EXCLUDED.version"""


async def apply_rollout_event(session: AsyncSession, event: dict[str, Any], stream_seq: int) -> None:
    data = event["data"]
    await session.execute(
        text(UPSERT),
        {
            "rollout_id": data["id"],
            "integration_id": data["integration_id"],
            "merchant_id": data["merchant_id"],
            "status": data["status"],
            "version": int(data["version"]),
            "now": datetime.now(UTC),
        },
    )


@asynccontextmanager
async def rollout_projection(app: FastAPI) -> AsyncIterator[None]:
    settings: AuthSettings = app.state.settings
    async with projecting(
        app,
        subject=ROLLOUT_EVENTS,
        durable=f"{settings.store_projector_durable}-rollouts",
        apply=apply_rollout_event,
        dead_letter_model=DeadLetter,
        start_at_new=settings.store_projector_start == "new",
        inactive_seconds=settings.store_projector_inactive_seconds,
    ):
        yield
