from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from ..models import Payment
from ..tenancy import Scope


async def get_payment(session: AsyncSession, scope: Scope, payment_id: str) -> Payment | None:
    query = select(Payment).where(Payment.id == payment_id)
    if scope.merchant_id is not None:
        query = query.where(Payment.merchant_id == scope.merchant_id)
    if scope.store_id is not None:
        query = query.where(Payment.store_id == scope.store_id)
    return (await session.execute(query)).scalar_one_or_none()


async def find_by_reference(session: AsyncSession, pgw_reference: str) -> Payment | None:
    return (await session.execute(select(Payment).where(Payment.pgw_reference == pgw_reference))).scalar_one_or_none()


async def lock_payment(session: AsyncSession, payment_id: str) -> Payment:
    """Call only while holding the order lock (lock order: order → bill → payment)."""
    return (
        await session.execute(
            select(Payment).where(Payment.id == payment_id).with_for_update().execution_options(populate_existing=True)
        )
    ).scalar_one()
