"""Orders: created open with lines priced from the catalog; `open → completed | canceled`, never back."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from smartpos_shared.auth import Principal, Role
from smartpos_shared.cache import VersionedCache
from smartpos_shared.db import after_commit, utcnow
from smartpos_shared.errors import Conflict, Forbidden, NotFound, Unprocessable
from smartpos_shared.ids import new_id

from ..bills import repository as bills
from ..bills.service import void_bill
from ..catalog import repository as catalog
from ..events import cache_entry, emit_resource, invalidate_after_commit
from ..merchants import repository as merchants
from ..models import Order, OrderLine
from ..tenancy import Scope
from . import repository
from .schemas import OrderCreate, OrderItemPublic, OrderPublic

CACHE_KIND = "order"


def order_public(order: Order, lines: list[OrderLine]) -> OrderPublic:
    return OrderPublic(
        id=order.id,
        merchant_id=order.merchant_id,
        store_id=order.store_id,
        status=order.status,
        items=[
            OrderItemPublic(
                product_id=line.product_id,
                name=line.name,
                quantity=line.quantity,
                unit_price=line.unit_price,
                line_total=line.line_total,
            )
            for line in lines
        ],
        item_count=order.item_count,
        total_amount=order.total_amount,
        currency=order.currency,
        version=order.version,
        created_at=order.created_at,
        updated_at=order.updated_at,
        completed_at=order.completed_at,
        canceled_at=order.canceled_at,
    )


def _store_for_new_order(principal: Principal, requested: str | None) -> str:
    if principal.role is Role.device:
        assert principal.store_id is not None
        if requested is not None and requested != principal.store_id:
            raise Forbidden("a device creates orders for its own store only", code="store_not_allowed")
        return principal.store_id
    if requested is None:
        raise Unprocessable("store_id is required", code="store_id_required")
    return requested


async def create_order(
    session: AsyncSession, cache: VersionedCache, principal: Principal, body: OrderCreate
) -> OrderPublic:
    scope = Scope.of(principal)
    store = await merchants.get_store(session, scope, _store_for_new_order(principal, body.store_id))
    if store is None:
        raise NotFound("store not found")
    merchant = await merchants.get_merchant(session, store.merchant_id)
    assert merchant is not None
    products = await catalog.products_by_id(session, store.merchant_id, (item.product_id for item in body.items))
    unknown = sorted({item.product_id for item in body.items} - products.keys())
    if unknown:
        raise Unprocessable(
            f"unknown products: {', '.join(unknown)}", code="unknown_product", extra={"unknown": unknown}
        )
    now = utcnow()
    order = Order(
        id=new_id("ord"),
        merchant_id=store.merchant_id,
        store_id=store.id,
        status="open",
        total_amount=0,
        currency=merchant.currency,
        version=1,
        created_at=now,
        updated_at=now,
        completed_at=None,
        canceled_at=None,
        item_count=sum(item.quantity for item in body.items),
    )
    lines = []
    for line_no, item in enumerate(body.items, start=1):
        product = products[item.product_id]
        lines.append(
            OrderLine(
                order_id=order.id,
                line_no=line_no,
                merchant_id=order.merchant_id,
                product_id=product.id,
                name=product.name,
                quantity=item.quantity,
                unit_price=product.unit_price,
                line_total=product.unit_price * item.quantity,
            )
        )
    order.total_amount = sum(line.line_total for line in lines)
    session.add(order)
    await session.flush()  # the order row first: lines reference it
    session.add_all(lines)
    await session.flush()
    public = order_public(order, lines)
    emit_resource(session, "order.created", public)

    async def warm() -> None:
        await cache.put(CACHE_KIND, public.id, cache_entry(public))

    after_commit(session, warm)
    return public


async def get_order(session: AsyncSession, cache: VersionedCache, principal: Principal, order_id: str) -> OrderPublic:
    scope = Scope.of(principal)
    hit = await cache.get(CACHE_KIND, order_id)
    if hit is not None:
        if not scope.allows(hit.merchant_id, hit.store_id):
            raise NotFound("order not found")  # same answer as the database would give
        return OrderPublic.model_validate(hit.body)
    order = await repository.get_order(session, scope, order_id)
    if order is None:
        raise NotFound("order not found")
    public = order_public(order, (await repository.lines_of(session, [order.id]))[order.id])
    await cache.put(CACHE_KIND, public.id, cache_entry(public))
    return public


async def list_orders(
    session: AsyncSession,
    principal: Principal,
    store_id: str | None,
    status: str | None,
    before_id: str | None,
    limit: int,
) -> list[OrderPublic]:
    orders = await repository.list_orders(session, Scope.of(principal), store_id, status, before_id, limit)
    lines = await repository.lines_of(session, [o.id for o in orders])
    return [order_public(o, lines.get(o.id, [])) for o in orders]


async def complete_order(session: AsyncSession, cache: VersionedCache, order: Order) -> OrderPublic:
    """open → completed (the order row must be locked by the caller)."""
    now = utcnow()
    order.status = "completed"
    order.completed_at = now
    return await _changed(session, cache, order, now)


async def _changed(session: AsyncSession, cache: VersionedCache, order: Order, now: object) -> OrderPublic:
    order.updated_at = now  # type: ignore[assignment]
    order.version += 1
    await session.flush()
    public = order_public(order, (await repository.lines_of(session, [order.id]))[order.id])
    emit_resource(session, "order.updated", public)
    invalidate_after_commit(session, cache, CACHE_KIND, order.id, order.version)
    return public


async def update_status(
    session: AsyncSession, cache: VersionedCache, principal: Principal, order_id: str, status: str
) -> OrderPublic:
    order = await repository.lock_order(session, Scope.of(principal), order_id)
    if order is None:
        raise NotFound("order not found")
    if order.status != "open":
        raise Conflict(f"the order is {order.status}; it can no longer change", code="order_not_open")
    bill = await bills.live_bill_for_order(session, order.id, lock=True)
    if bill is not None and await bills.has_pending_payments(session, bill.id):
        raise Conflict("the bill has pending payments; wait for the gateway", code="payments_pending")
    if status == "canceled":
        if bill is not None and bill.paid_amount > 0:
            raise Conflict("the bill has payments; refund them before canceling", code="bill_has_payments")
        now = utcnow()
        order.status = "canceled"
        order.canceled_at = now
        if bill is not None:
            await void_bill(session, cache, bill)
        return await _changed(session, cache, order, now)
    # Completed explicitly (settled outside the platform): an untouched bill is no longer collectable.
    if bill is not None and bill.status == "unpaid":
        await void_bill(session, cache, bill)
    return await complete_order(session, cache, order)
