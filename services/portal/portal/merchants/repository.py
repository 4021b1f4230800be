from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from ..models import Merchant, Store
from ..tenancy import Scope


async def get_merchant(session: AsyncSession, merchant_id: str) -> Merchant | None:
    return await session.get(Merchant, merchant_id)


async def get_store(session: AsyncSession, scope: Scope, store_id: str) -> Store | None:
    query = select(Store).where(Store.id == store_id)
    if scope.merchant_id is not None:
        query = query.where(Store.merchant_id == scope.merchant_id)
    if scope.store_id is not None:
        query = query.where(Store.id == scope.store_id)
    return (await session.execute(query)).scalar_one_or_none()


async def list_stores(session: AsyncSession, scope: Scope, before_id: str | None, limit: int) -> list[Store]:
    query = select(Store).order_by(Store.id.desc()).limit(limit + 1)
    if scope.merchant_id is not None:
        query = query.where(Store.merchant_id == scope.merchant_id)
    if scope.store_id is not None:
        query = query.where(Store.id == scope.store_id)
    if before_id is not None:
        query = query.where(Store.id < before_id)
    return list((await session.execute(query)).scalars())
