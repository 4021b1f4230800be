"""Portal events: staged in the outbox in the transaction that made the change; caches dropped after commit."""

from __future__ import annotations

from typing import Any, Protocol

from fastapi import Request
from sqlalchemy.ext.asyncio import AsyncSession

from smartpos_shared.cache import CachedResource, VersionedCache
from smartpos_shared.db import after_commit
from smartpos_shared.events import add_event

from .models import OutboxEvent

SOURCE = "portal"


def emit(
    session: AsyncSession,
    event_type: str,
    *,
    merchant_id: str,
    store_id: str | None,
    subject: str,
    version: int,
    data: dict[str, Any],
) -> None:
    add_event(
        session,
        OutboxEvent,
        source=SOURCE,
        event_type=event_type,
        merchant_id=merchant_id,
        store_id=store_id,
        subject=subject,
        version=version,
        data=data,
    )


def invalidate_after_commit(
    session: AsyncSession, cache: VersionedCache, kind: str, resource_id: str, version: int
) -> None:
    async def drop() -> None:
        await cache.invalidate(kind, resource_id, version)

    after_commit(session, drop)


def cache_of(request: Request) -> VersionedCache:
    cache: VersionedCache = request.app.state.cache
    return cache


class TenantResource(Protocol):
    """What a REST representation of an order, bill or payment has in common."""

    id: str
    merchant_id: str
    store_id: str
    version: int

    def model_dump(self, *, mode: str = ...) -> dict[str, Any]: ...


def emit_resource(session: AsyncSession, event_type: str, resource: TenantResource) -> None:
    """Stage `event_type` for a resource: its REST representation as `data`, its version, its tenant."""
    emit(
        session,
        event_type,
        merchant_id=resource.merchant_id,
        store_id=resource.store_id,
        subject=resource.id,
        version=resource.version,
        data=resource.model_dump(mode="json"),
    )


def cache_entry(resource: TenantResource) -> CachedResource:
    return CachedResource(resource.version, resource.merchant_id, resource.store_id, resource.model_dump(mode="json"))
