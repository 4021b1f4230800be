from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from smartpos_shared.db import utcnow
from smartpos_shared.states import OrderStatus

from ..models import LiveOrder, LiveStore


async def upsert_order(session: AsyncSession, values: dict[str, Any]) -> bool:
    """Apply an order snapshot unless a newer (or the same) version is already there. Idempotent."""
    statement = insert(LiveOrder).values(**values)
    upsert = statement.on_conflict_do_update(
        index_elements=[LiveOrder.order_id],
        set_={name: statement.excluded[name] for name in values if name != "order_id"},
        where=LiveOrder.version < statement.excluded.version,
    ).returning(LiveOrder.order_id)
    return (await session.execute(upsert)).first() is not None


async def upsert_store(session: AsyncSession, *, store_id: str, merchant_id: str, name: str, version: int) -> None:
    """Apply a store snapshot unless a newer (or the same) version is already there. Idempotent."""
    statement = insert(LiveStore).values(
        store_id=store_id, merchant_id=merchant_id, name=name, version=version, updated_at=utcnow()
    )
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=[LiveStore.store_id],
            set_={"name": statement.excluded.name, "version": statement.excluded.version, "updated_at": utcnow()},
            where=LiveStore.version < statement.excluded.version,
        )
    )


async def store_owner(session: AsyncSession, store_id: str) -> str | None:
    query = select(LiveStore.merchant_id).where(LiveStore.store_id == store_id)
    return (await session.execute(query)).scalar_one_or_none()


async def open_orders(session: AsyncSession, merchant_id: str, store_id: str, limit: int) -> list[dict[str, Any]]:
    query = (
        select(LiveOrder.order)
        .where(
            LiveOrder.merchant_id == merchant_id, LiveOrder.store_id == store_id, LiveOrder.status == OrderStatus.open
        )
        .order_by(LiveOrder.created_at.desc())
        .limit(limit)
    )
    return list((await session.execute(query)).scalars())


async def totals_since(session: AsyncSession, merchant_id: str, store_id: str, since: datetime) -> tuple[int, int, int]:
    """Orders created since `since`, those completed since then, and their revenue net of refunds (the order's
    latest snapshot carries `refunded_amount`; snapshots from before refunds existed count as 0)."""
    completed_today = (LiveOrder.status == OrderStatus.completed) & (LiveOrder.completed_at >= since)
    refunded = func.coalesce(LiveOrder.order["refunded_amount"].as_integer(), 0)
    query = select(
        func.count().filter(LiveOrder.created_at >= since),
        func.count().filter(completed_today),
        func.coalesce(func.sum(LiveOrder.total_amount - refunded).filter(completed_today), 0),
    ).where(LiveOrder.merchant_id == merchant_id, LiveOrder.store_id == store_id)
    orders, completed, revenue = (await session.execute(query)).one()
    return int(orders), int(completed), int(revenue)


async def recent_orders(
    session: AsyncSession, merchant_id: str, store_id: str, since: datetime, limit: int
) -> list[dict[str, Any]]:
    """The store's orders created since `since`, newest first (each as its latest snapshot)."""
    query = (
        select(LiveOrder.order, LiveOrder.stream_seq)
        .where(LiveOrder.merchant_id == merchant_id, LiveOrder.store_id == store_id, LiveOrder.created_at >= since)
        .order_by(LiveOrder.created_at.desc())
        .limit(limit)
    )
    return [{**order, "seq": seq} for order, seq in (await session.execute(query)).all()]


async def stores_of(session: AsyncSession, merchant_id: str) -> list[tuple[str, str]]:
    query = select(LiveStore.store_id, LiveStore.name).where(LiveStore.merchant_id == merchant_id)
    return [(row.store_id, row.name) for row in (await session.execute(query.order_by(LiveStore.name)))]
