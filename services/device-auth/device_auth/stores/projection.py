"""Stores as device-auth knows them: projected from the portal's `store.created` events."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession

from smartpos_shared.projector import projecting

from ..models import DeadLetter
from ..settings import AuthSettings
from . import repository

STORE_CREATED = "smartpos.*.store.created"


async def apply_store_created(session: AsyncSession, event: dict[str, Any], stream_seq: int) -> None:
    await repository.learn_store(session, store_id=event["data"]["id"], merchant_id=event["merchant_id"])


@asynccontextmanager
async def store_projection(app: FastAPI) -> AsyncIterator[None]:
    settings: AuthSettings = app.state.settings
    async with projecting(
        app,
        subject=STORE_CREATED,
        durable=settings.store_projector_durable,
        apply=apply_store_created,
        dead_letter_model=DeadLetter,
        start_at_new=settings.store_projector_start == "new",
        inactive_seconds=settings.store_projector_inactive_seconds,
    ):
        yield
