from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from ..models import KnownStore


async def learn_store(session: AsyncSession, store_id: str, merchant_id: str) -> None:
    """Idempotent: a redelivered `store.created` changes nothing (a store never changes merchant)."""
    await session.execute(
        insert(KnownStore).values(store_id=store_id, merchant_id=merchant_id).on_conflict_do_nothing()
    )


async def store_of_merchant(session: AsyncSession, store_id: str, merchant_id: str) -> bool:
    query = select(KnownStore.store_id).where(KnownStore.store_id == store_id, KnownStore.merchant_id == merchant_id)
    return (await session.execute(query)).first() is not None
