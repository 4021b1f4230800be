from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from ..models import Bill, Payment
from ..tenancy import Scope


async def get_bill(session: AsyncSession, scope: Scope, bill_id: str) -> Bill | None:
    query = select(Bill).where(Bill.id == bill_id)
    if scope.merchant_id is not None:
        query = query.where(Bill.merchant_id == scope.merchant_id)
    if scope.store_id is not None:
        query = query.where(Bill.store_id == scope.store_id)
    return (await session.execute(query)).scalar_one_or_none()


async def lock_bill(session: AsyncSession, bill_id: str) -> Bill:
    """Call only while holding the bill's order lock (lock order: order → bill → payment)."""
    return (
        await session.execute(
            select(Bill).where(Bill.id == bill_id).with_for_update().execution_options(populate_existing=True)
        )
    ).scalar_one()


async def live_bill_for_order(session: AsyncSession, order_id: str, *, lock: bool = False) -> Bill | None:
    query = select(Bill).where(Bill.order_id == order_id, Bill.status != "void")
    if lock:
        query = query.with_for_update().execution_options(populate_existing=True)
    return (await session.execute(query)).scalar_one_or_none()


async def has_pending_payments(session: AsyncSession, bill_id: str) -> bool:
    query = select(Payment.id).where(Payment.bill_id == bill_id, Payment.status == "pending").limit(1)
    return (await session.execute(query)).first() is not None


async def pending_amount(session: AsyncSession, bill_id: str) -> int:
    query = select(func.coalesce(func.sum(Payment.amount), 0)).where(
        Payment.bill_id == bill_id, Payment.status == "pending"
    )
    return int((await session.execute(query)).scalar_one())
