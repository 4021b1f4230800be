"""Bills: `unpaid → partially_paid → paid`, or `unpaid → void` when the order is canceled. One live bill per
order. `paid_at` is set exactly once, when succeeded payments reach the total."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from smartpos_shared.auth import Principal
from smartpos_shared.cache import VersionedCache
from smartpos_shared.db import after_commit, utcnow
from smartpos_shared.errors import Conflict, NotFound
from smartpos_shared.ids import new_id

from ..events import cache_entry, emit_resource, invalidate_after_commit
from ..models import Bill
from ..orders import repository as orders
from ..tenancy import Scope
from . import repository
from .schemas import BillCreate, BillPublic

CACHE_KIND = "bill"


def bill_public(bill: Bill) -> BillPublic:
    return BillPublic(
        id=bill.id,
        order_id=bill.order_id,
        merchant_id=bill.merchant_id,
        store_id=bill.store_id,
        status=bill.status,
        total_amount=bill.total_amount,
        paid_amount=bill.paid_amount,
        currency=bill.currency,
        paid_at=bill.paid_at,
        version=bill.version,
        created_at=bill.created_at,
        updated_at=bill.updated_at,
    )


async def create_bill(
    session: AsyncSession, cache: VersionedCache, principal: Principal, body: BillCreate
) -> BillPublic:
    order = await orders.lock_order(session, Scope.of(principal), body.order_id)
    if order is None:
        raise NotFound("order not found")
    if order.status != "open":
        raise Conflict(f"the order is {order.status}; only open orders are billed", code="order_not_open")
    if await repository.live_bill_for_order(session, order.id) is not None:
        raise Conflict("the order already has a live bill", code="bill_exists")
    if order.total_amount == 0:
        raise Conflict("the order totals 0: complete it instead of billing it", code="nothing_to_bill")
    now = utcnow()
    bill = Bill(
        id=new_id("bil"),
        merchant_id=order.merchant_id,
        store_id=order.store_id,
        order_id=order.id,
        status="unpaid",
        total_amount=order.total_amount,
        paid_amount=0,
        currency=order.currency,
        paid_at=None,
        version=1,
        created_at=now,
        updated_at=now,
    )
    session.add(bill)
    await session.flush()
    public = bill_public(bill)
    emit_resource(session, "bill.created", public)

    async def warm() -> None:
        await cache.put(CACHE_KIND, public.id, cache_entry(public))

    after_commit(session, warm)
    return public


async def get_bill(session: AsyncSession, cache: VersionedCache, principal: Principal, bill_id: str) -> BillPublic:
    scope = Scope.of(principal)
    hit = await cache.get(CACHE_KIND, bill_id)
    if hit is not None:
        if not scope.allows(hit.merchant_id, hit.store_id):
            raise NotFound("bill not found")
        return BillPublic.model_validate(hit.body)
    bill = await repository.get_bill(session, scope, bill_id)
    if bill is None:
        raise NotFound("bill not found")
    public = bill_public(bill)
    await cache.put(CACHE_KIND, public.id, cache_entry(public))
    return public


async def _changed(session: AsyncSession, cache: VersionedCache, bill: Bill, event_type: str) -> BillPublic:
    bill.version += 1
    bill.updated_at = utcnow()
    await session.flush()
    public = bill_public(bill)
    emit_resource(session, event_type, public)
    invalidate_after_commit(session, cache, CACHE_KIND, bill.id, bill.version)
    return public


async def void_bill(session: AsyncSession, cache: VersionedCache, bill: Bill) -> BillPublic:
    bill.status = "void"
    return await _changed(session, cache, bill, "bill.voided")


async def record_succeeded_payment(session: AsyncSession, cache: VersionedCache, bill: Bill, amount: int) -> BillPublic:
    """Add a succeeded payment to the bill (locked by the caller). The caller has checked it fits."""
    bill.paid_amount += amount
    if bill.paid_amount == bill.total_amount:
        bill.status = "paid"
        bill.paid_at = utcnow()
        return await _changed(session, cache, bill, "bill.paid")
    bill.status = "partially_paid"
    return await _changed(session, cache, bill, "bill.updated")
