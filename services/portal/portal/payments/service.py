"""Payments: `pending → succeeded | failed`; cash succeeds at once, card and qr wait for the gateway's webhook.

Every transition runs under the order's row lock (order → bill → payment), so concurrent requests on one bill
serialize: a payment never exceeds what remains (succeeded + pending), and the bill is paid exactly once.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from smartpos_shared.auth import Principal
from smartpos_shared.cache import VersionedCache
from smartpos_shared.db import after_commit, utcnow
from smartpos_shared.errors import Conflict, NotFound, Unprocessable
from smartpos_shared.ids import new_id

from ..bills import repository as bills
from ..bills.service import record_succeeded_payment
from ..events import emit_resource
from ..models import Bill, Order, Payment
from ..orders import repository as orders
from ..orders.service import complete_order
from ..pgw.gateway import Charge, PaymentGateway, new_reference
from ..tenancy import Scope
from . import repository
from .schemas import PaymentCreate, PaymentPublic

ALL = Scope(None, None)


def payment_public(payment: Payment) -> PaymentPublic:
    return PaymentPublic(
        id=payment.id,
        bill_id=payment.bill_id,
        order_id=payment.order_id,
        merchant_id=payment.merchant_id,
        store_id=payment.store_id,
        amount=payment.amount,
        currency=payment.currency,
        method=payment.method,
        status=payment.status,
        pgw_reference=payment.pgw_reference,
        failure_reason=payment.failure_reason,
        version=payment.version,
        created_at=payment.created_at,
        updated_at=payment.updated_at,
    )


def _emit(session: AsyncSession, event_type: str, payment: Payment) -> PaymentPublic:
    public = payment_public(payment)
    emit_resource(session, event_type, public)
    return public


async def create_payment(
    session: AsyncSession, cache: VersionedCache, gateway: PaymentGateway, principal: Principal, body: PaymentCreate
) -> PaymentPublic:
    visible = await bills.get_bill(session, Scope.of(principal), body.bill_id)
    if visible is None:
        raise NotFound("bill not found")
    order = await orders.lock_order(session, ALL, visible.order_id)
    assert order is not None
    bill = await bills.lock_bill(session, visible.id)
    if bill.status not in ("unpaid", "partially_paid") or order.status != "open":
        state = f"bill is {bill.status}" if order.status == "open" else f"order is {order.status}"
        raise Conflict(f"the {state}; it takes no more payments", code="bill_not_payable")
    remaining = bill.total_amount - bill.paid_amount - await bills.pending_amount(session, bill.id)
    if body.amount > remaining:
        raise Unprocessable(
            f"amount exceeds what remains to be paid ({remaining}, counting pending payments)",
            code="amount_exceeds_remaining",
            extra={"remaining_amount": remaining},
        )
    now = utcnow()
    payment = Payment(
        id=new_id("pay"),
        merchant_id=bill.merchant_id,
        store_id=bill.store_id,
        bill_id=bill.id,
        order_id=bill.order_id,
        amount=body.amount,
        currency=bill.currency,
        method=body.method,
        status="pending",
        pgw_reference=None if body.method == "cash" else new_reference(),
        failure_reason=None,
        version=1,
        created_at=now,
        updated_at=now,
    )
    session.add(payment)
    await session.flush()
    public = _emit(session, "payment.created", payment)
    if body.method == "cash":
        return await succeed(session, cache, order, bill, payment)
    charge = Charge(payment.pgw_reference or "", payment.amount, payment.currency, payment.method)

    async def send_to_gateway() -> None:
        await gateway.charge(charge)

    after_commit(session, send_to_gateway)
    return public


async def succeed(
    session: AsyncSession, cache: VersionedCache, order: Order, bill: Bill, payment: Payment
) -> PaymentPublic:
    """pending → succeeded; the bill records it, and the order completes when the bill is paid."""
    payment.status = "succeeded"
    payment.version += 1
    payment.updated_at = utcnow()
    await session.flush()
    public = _emit(session, "payment.succeeded", payment)
    bill_after = await record_succeeded_payment(session, cache, bill, payment.amount)
    if bill_after.status == "paid" and order.status == "open":
        await complete_order(session, cache, order)
    return public


async def fail(session: AsyncSession, payment: Payment, reason: str) -> PaymentPublic:
    payment.status = "failed"
    payment.failure_reason = reason
    payment.version += 1
    payment.updated_at = utcnow()
    await session.flush()
    return _emit(session, "payment.failed", payment)


async def get_payment(session: AsyncSession, principal: Principal, payment_id: str) -> PaymentPublic:
    payment = await repository.get_payment(session, Scope.of(principal), payment_id)
    if payment is None:
        raise NotFound("payment not found")
    return payment_public(payment)
