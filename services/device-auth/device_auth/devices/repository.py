from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from ..models import Device


async def get_device(session: AsyncSession, device_id: str) -> Device | None:
    """Unscoped: only the token endpoint uses it, with the id the assertion claims."""
    return await session.get(Device, device_id)


async def get_device_for_merchant(
    session: AsyncSession, device_id: str, merchant_id: str | None, *, lock: bool = False
) -> Device | None:
    query = select(Device).where(Device.id == device_id)
    if merchant_id is not None:  # None: admin
        query = query.where(Device.merchant_id == merchant_id)
    if lock:
        query = query.with_for_update().execution_options(populate_existing=True)
    return (await session.execute(query)).scalar_one_or_none()


async def list_devices(
    session: AsyncSession, merchant_id: str | None, store_id: str | None, before_id: str | None, limit: int
) -> list[Device]:
    query = select(Device).order_by(Device.id.desc()).limit(limit + 1)
    if merchant_id is not None:
        query = query.where(Device.merchant_id == merchant_id)
    if store_id is not None:
        query = query.where(Device.store_id == store_id)
    if before_id is not None:
        query = query.where(Device.id < before_id)
    return list((await session.execute(query)).scalars())
