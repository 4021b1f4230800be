from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from smartpos_shared.pg import Db

from ..models import Device
from ..tokens.assertions import TokenDevice

# A device of an integration is enabled where a rollout says so: live everywhere, in pilot at its pilot merchant.
TOKEN_DEVICE = """
SELECT d.id, d.merchant_id, d.store_id, d.status, d.version, d.jwks::text,
       d.integration_id IS NULL OR EXISTS (
           SELECT 1 FROM integration_rollouts r WHERE r.integration_id = d.integration_id
             AND (r.status = 'live' OR (r.status = 'pilot' AND r.merchant_id = d.merchant_id))
       ) AS integration_enabled
FROM devices d WHERE d.id = $1"""


async def device_for_token(db: Db, device_id: str) -> TokenDevice | None:
    """Unscoped by design: the token endpoint looks up the device the assertion claims to be (and then proves
    it with the device's own key). One statement, no transaction."""
    row = await db.fetchrow(TOKEN_DEVICE, device_id)
    return TokenDevice(*row) if row is not None else None


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
