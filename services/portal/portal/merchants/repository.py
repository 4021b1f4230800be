from __future__ import annotations

from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from ..models import Merchant, Store
from ..tenancy import Tenant

TENANT_RESOLUTION = "/* tenant-resolution */"


async def get_merchant(session: AsyncSession, merchant_id: str, *, for_update: bool = False) -> Merchant | None:
    """A merchant row is its own tenant."""
    query = select(Merchant).where(Merchant.id == merchant_id)
    if for_update:
        query = query.with_for_update()
    return (await session.execute(query)).scalar_one_or_none()


async def merchant_of_store(session: AsyncSession, store_id: str) -> str | None:
    """Tenant resolution (admins): who owns the store."""
    query = select(Store.merchant_id).where(Store.id == store_id).prefix_with(TENANT_RESOLUTION)
    merchant_id: str | None = (await session.execute(query)).scalar_one_or_none()
    return merchant_id


async def get_store(session: AsyncSession, tenant: Tenant, store_id: str, *, for_update: bool = False) -> Store | None:
    query = select(Store).where(Store.id == store_id, Store.merchant_id == tenant.merchant_id)
    if tenant.store_id is not None:
        query = query.where(Store.id == tenant.store_id)
    if for_update:
        query = query.with_for_update()
    return (await session.execute(query)).scalar_one_or_none()


async def list_stores(session: AsyncSession, tenant: Tenant, before_id: str | None, limit: int) -> list[Store]:
    query = select(Store).where(Store.merchant_id == tenant.merchant_id).order_by(Store.id.desc()).limit(limit + 1)
    if tenant.store_id is not None:
        query = query.where(Store.id == tenant.store_id)
    if before_id is not None:
        query = query.where(Store.id < before_id)
    return list((await session.execute(query)).scalars())


async def update_store(session: AsyncSession, tenant: Tenant, store_id: str, changes: dict[str, Any]) -> None:
    await session.execute(
        update(Store)
        .where(Store.id == store_id, Store.merchant_id == tenant.merchant_id)
        .values(**changes)
        .execution_options(synchronize_session=False)
    )
