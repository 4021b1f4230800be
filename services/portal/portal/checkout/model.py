"""The checkout aggregate: an order, its lines, its live bill and that bill's payments, changed only through the
transition methods below. Each transition checks its rule, changes the rows in memory, and records the events
it caused (with the resource's REST representation, serialized once and reused for the response, the event and
the cache). The repository persists the changed rows and the events in one statement; it takes the aggregate's
lock (the order row) before loading it, so transitions see the committed state and race with nobody.

Amounts are integers in the currency's minor unit. `version` increments on every change.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson

from . import errors
from .states import (
    PAYABLE_BILL,
    SETTLED_AT_ONCE,
    BillStatus,
    OrderStatus,
    PaymentMethod,
    PaymentStatus,
    RefundStatus,
)

JSON_OPTIONS = orjson.OPT_UTC_Z


def dumps(body: dict[str, Any]) -> bytes:
    return orjson.dumps(body, option=JSON_OPTIONS)


@dataclass(slots=True)
class Line:
    line_no: int
    product_id: str
    name: str
    quantity: int
    unit_price: int

    @property
    def line_total(self) -> int:
        return self.unit_price * self.quantity


@dataclass(slots=True, eq=False)  # identity: the aggregate tracks these objects
class Order:
    id: str
    merchant_id: str
    store_id: str
    status: OrderStatus
    total_amount: int
    currency: str
    version: int
    created_at: datetime
    updated_at: datetime
    completed_at: datetime | None
    canceled_at: datetime | None
    item_count: int
    lines: list[Line]
    refunded_amount: int = 0
    client_order_id: str | None = None  # the terminal's own id (offline store-and-forward)
    taken_at: datetime | None = None  # when the terminal took it offline
    device_id: str | None = None

    def body(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "merchant_id": self.merchant_id,
            "store_id": self.store_id,
            "status": self.status,
            "items": [
                {
                    "product_id": line.product_id,
                    "name": line.name,
                    "quantity": line.quantity,
                    "unit_price": line.unit_price,
                    "line_total": line.line_total,
                }
                for line in self.lines
            ],
            "item_count": self.item_count,
            "total_amount": self.total_amount,
            "refunded_amount": self.refunded_amount,
            "currency": self.currency,
            "version": self.version,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "completed_at": self.completed_at,
            "canceled_at": self.canceled_at,
            "client_order_id": self.client_order_id,
            "taken_at": self.taken_at,
        }


@dataclass(slots=True, eq=False)  # identity: the aggregate tracks these objects
class Bill:
    id: str
    merchant_id: str
    store_id: str
    order_id: str
    status: BillStatus
    total_amount: int
    paid_amount: int
    currency: str
    paid_at: datetime | None
    version: int
    created_at: datetime
    updated_at: datetime
    refunded_amount: int = 0

    def body(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "order_id": self.order_id,
            "merchant_id": self.merchant_id,
            "store_id": self.store_id,
            "status": self.status,
            "total_amount": self.total_amount,
            "paid_amount": self.paid_amount,
            "refunded_amount": self.refunded_amount,
            "currency": self.currency,
            "paid_at": self.paid_at,
            "version": self.version,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }


@dataclass(slots=True, eq=False)  # identity: the aggregate tracks these objects
class Payment:
    id: str
    merchant_id: str
    store_id: str
    bill_id: str
    order_id: str
    amount: int
    currency: str
    method: PaymentMethod
    status: PaymentStatus
    pgw_reference: str | None
    failure_reason: str | None
    version: int
    created_at: datetime
    updated_at: datetime
    refunded_amount: int = 0  # succeeded refunds
    refund_pending_amount: int = 0  # refunds the gateway has not settled yet
    captured_after_void_at: datetime | None = None
    client_payment_id: str | None = None
    taken_offline: bool = False
    device_id: str | None = None
    offline_auth: str | None = None
    # Set by the transition that makes it succeed; written once, never loaded (it is not in the API): the business
    # day whose Z report counts the payment.
    succeeded_at: datetime | None = None

    @property
    def refundable_amount(self) -> int:
        return self.amount - self.refunded_amount - self.refund_pending_amount

    def body(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "bill_id": self.bill_id,
            "order_id": self.order_id,
            "merchant_id": self.merchant_id,
            "store_id": self.store_id,
            "amount": self.amount,
            "currency": self.currency,
            "method": self.method,
            "status": self.status,
            "pgw_reference": self.pgw_reference,
            "failure_reason": self.failure_reason,
            "refunded_amount": self.refunded_amount,
            "refund_pending_amount": self.refund_pending_amount,
            "captured_after_void_at": self.captured_after_void_at,
            "client_payment_id": self.client_payment_id,
            "taken_offline": self.taken_offline,
            "version": self.version,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }


@dataclass(slots=True, eq=False)  # identity: the aggregate tracks these objects
class Refund:
    id: str
    merchant_id: str
    store_id: str
    order_id: str
    bill_id: str
    payment_id: str
    amount: int
    currency: str
    method: PaymentMethod
    status: RefundStatus
    reason: str | None
    pgw_reference: str | None
    failure_reason: str | None
    version: int
    created_at: datetime
    updated_at: datetime

    def body(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "payment_id": self.payment_id,
            "bill_id": self.bill_id,
            "order_id": self.order_id,
            "merchant_id": self.merchant_id,
            "store_id": self.store_id,
            "amount": self.amount,
            "currency": self.currency,
            "method": self.method,
            "status": self.status,
            "reason": self.reason,
            "pgw_reference": self.pgw_reference,
            "failure_reason": self.failure_reason,
            "version": self.version,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }


Resource = Order | Bill | Payment | Refund


@dataclass(frozen=True, slots=True)
class OfflineTender:
    """A payment a terminal took while offline: which terminal, and the authorization it got (if any)."""

    device_id: str
    auth: str | None


@dataclass(frozen=True, slots=True)
class Event:
    """An event to record in the outbox: its type and the resource's representation at that moment."""

    type: str
    subject: str
    version: int
    store_id: str
    data: bytes


def snapshot(event_type: str, resource: Resource) -> Event:
    return Event(event_type, resource.id, resource.version, resource.store_id, dumps(resource.body()))


@dataclass(slots=True)
class Checkout:
    """One order's aggregate as loaded under its lock (or just created), with what changed since."""

    order: Order
    bill: Bill | None = None
    payments: list[Payment] = field(default_factory=list)
    refunds: list[Refund] = field(default_factory=list)  # of the bill's payments
    # The aggregate's change counter as read (orders.lock_version); None for an order created in this request.
    lock_version: int | None = None
    events: list[Event] = field(default_factory=list)
    # Rows to insert, and rows to update with the version they had when loaded (the update checks it).
    inserted: list[Resource] = field(default_factory=list)
    updated: dict[str, tuple[Resource, int]] = field(default_factory=dict)

    # ------------------------------------------------------------------ creation

    @classmethod
    def ring_up(
        cls,
        order_id: str,
        merchant_id: str,
        store_id: str,
        currency: str,
        lines: list[Line],
        now: datetime,
        *,
        client_order_id: str | None = None,
        taken_at: datetime | None = None,
        device_id: str | None = None,
    ) -> Checkout:
        order = Order(
            id=order_id,
            merchant_id=merchant_id,
            store_id=store_id,
            status=OrderStatus.open,
            total_amount=sum(line.line_total for line in lines),
            currency=currency,
            version=1,
            created_at=now,
            updated_at=now,
            completed_at=None,
            canceled_at=None,
            item_count=sum(line.quantity for line in lines),
            lines=lines,
            client_order_id=client_order_id,
            taken_at=taken_at,
            device_id=device_id,
        )
        checkout = cls(order)
        checkout.inserted.append(order)
        checkout._record("order.created", order)
        return checkout

    # ------------------------------------------------------------------ transitions

    def bill_order(self, bill_id: str, now: datetime) -> Bill:
        """Open order, no live bill, something to pay → an unpaid bill for the order's total."""
        order = self.order
        if order.status is not OrderStatus.open:
            raise errors.OrderNotOpen(f"the order is {order.status}; only open orders are billed")
        if self.bill is not None:
            raise errors.BillExists()
        if order.total_amount == 0:
            raise errors.NothingToBill()
        bill = Bill(
            id=bill_id,
            merchant_id=order.merchant_id,
            store_id=order.store_id,
            order_id=order.id,
            status=BillStatus.unpaid,
            total_amount=order.total_amount,
            paid_amount=0,
            currency=order.currency,
            paid_at=None,
            version=1,
            created_at=now,
            updated_at=now,
        )
        self.bill = bill
        self.inserted.append(bill)
        self._record("bill.created", bill)
        return bill

    def remaining_amount(self) -> int:
        """What may still be asked for: the total less succeeded and pending payments."""
        assert self.bill is not None
        pending = sum(p.amount for p in self.payments if p.status is PaymentStatus.pending)
        return self.bill.total_amount - self.bill.paid_amount - pending

    def take_payment(
        self,
        payment_id: str,
        amount: int,
        method: PaymentMethod,
        pgw_reference: str | None,
        now: datetime,
        *,
        client_payment_id: str | None = None,
        offline: OfflineTender | None = None,
    ) -> Payment:
        """A payment on a payable bill of an open order, never above what remains. Cash succeeds at once; card
        and qr stay pending until the gateway answers."""
        bill = self.bill
        assert bill is not None, "load the checkout by its bill"
        if bill.status not in PAYABLE_BILL or self.order.status is not OrderStatus.open:
            state = (
                f"bill is {bill.status}" if self.order.status is OrderStatus.open else f"order is {self.order.status}"
            )
            raise errors.BillNotPayable(f"the {state}; it takes no more payments")
        remaining = self.remaining_amount()
        if amount > remaining:
            raise errors.AmountExceedsRemaining(remaining)
        payment = Payment(
            id=payment_id,
            merchant_id=bill.merchant_id,
            store_id=bill.store_id,
            bill_id=bill.id,
            order_id=bill.order_id,
            amount=amount,
            currency=bill.currency,
            method=method,
            status=PaymentStatus.pending,
            pgw_reference=pgw_reference,
            failure_reason=None,
            version=1,
            created_at=now,
            updated_at=now,
            client_payment_id=client_payment_id,
            taken_offline=offline is not None,
            device_id=offline.device_id if offline else None,
            offline_auth=offline.auth if offline else None,
        )
        self.payments.append(payment)
        self.inserted.append(payment)
        self._record("payment.created", payment)
        if method in SETTLED_AT_ONCE:
            self.succeed(payment, now)
        return payment

    def succeed(self, payment: Payment, now: datetime) -> None:
        """pending → succeeded; the bill counts it, and the order completes when the bill is paid."""
        bill = self.bill
        assert bill is not None and payment.status is PaymentStatus.pending
        self._change(payment, now)
        payment.status, payment.succeeded_at = PaymentStatus.succeeded, now
        self._record("payment.succeeded", payment)
        self._change(bill, now)
        bill.paid_amount += payment.amount
        if bill.paid_amount == bill.total_amount:
            bill.status, bill.paid_at = BillStatus.paid, now
            self._record("bill.paid", bill)
            if self.order.status is OrderStatus.open:
                self._complete(now)
        else:
            bill.status = BillStatus.partially_paid
            self._record("bill.updated", bill)

    def fail(self, payment: Payment, reason: str, now: datetime) -> None:
        assert payment.status is PaymentStatus.pending
        self._change(payment, now)
        payment.status, payment.failure_reason = PaymentStatus.failed, reason
        self._record("payment.failed", payment)

    def void(self, payment: Payment, now: datetime) -> None:
        """pending → canceled, before the gateway confirmed it: what it reserved is free to pay again."""
        if payment.status is not PaymentStatus.pending:
            raise errors.PaymentNotVoidable(f"the payment is {payment.status}; only pending payments are voided")
        self._change(payment, now)
        payment.status = PaymentStatus.canceled
        self._record("payment.canceled", payment)

    def captured_late(self, payment: Payment, refund_id: str, pgw_reference: str, now: datetime) -> str:
        """The gateway captured a payment we had voided, or one it had declined before (its events out of order):
        it never pays the bill. It is marked for review and its whole amount refunded at once (a refund sent to the
        gateway, settled by its webhook like any other). Answers what happened: `captured_after_void` or
        `captured_after_failure` (the refund's reason and the event's type)."""
        given_up = payment.status in (PaymentStatus.canceled, PaymentStatus.failed)
        assert given_up and payment.captured_after_void_at is None
        what = "captured_after_void" if payment.status is PaymentStatus.canceled else "captured_after_failure"
        self._change(payment, now)
        payment.captured_after_void_at = now
        self._new_refund(payment, refund_id, payment.amount, what, pgw_reference, now)
        self._record(f"payment.{what}", payment)  # as it ends up: the refund reserved
        return what

    def refund(
        self,
        payment: Payment,
        refund_id: str,
        amount: int,
        reason: str | None,
        pgw_reference: str | None,
        now: datetime,
    ) -> Refund:
        """Part or all of what is left of a succeeded payment goes back to the same tender. Cash is given back at
        once; card and qr are pending until the gateway settles them. A payment captured after its void can be
        refunded too (its automatic refund may have failed): that money never paid the bill."""
        given_up = payment.status in (PaymentStatus.canceled, PaymentStatus.failed)
        captured = given_up and payment.captured_after_void_at is not None
        if payment.status is not PaymentStatus.succeeded and not captured:
            raise errors.PaymentNotRefundable(f"the payment is {payment.status}; only succeeded payments are refunded")
        if amount > payment.refundable_amount:
            raise errors.RefundExceedsPayment(payment.refundable_amount)
        refund = self._new_refund(payment, refund_id, amount, reason, pgw_reference, now)
        if payment.method in SETTLED_AT_ONCE:
            self.settle_refund(refund, succeeded=True, reason=None, now=now, record_payment=False)
        self._record("payment.updated", payment)  # its refunded / reserved amounts, as they end up
        return refund

    def settle_refund(
        self, refund: Refund, *, succeeded: bool, reason: str | None, now: datetime, record_payment: bool = True
    ) -> None:
        """pending → succeeded (the money is back with the customer: the payment, bill and order count it) or
        failed (the reserved amount is refundable again)."""
        assert refund.status is RefundStatus.pending
        payment = self.payment(refund.payment_id)
        self._change(refund, now)
        self._change(payment, now)
        payment.refund_pending_amount -= refund.amount
        if not succeeded:
            refund.status, refund.failure_reason = RefundStatus.failed, reason
            self._record("refund.failed", refund)
            if record_payment:
                self._record("payment.updated", payment)
            return
        refund.status = RefundStatus.succeeded
        payment.refunded_amount += refund.amount
        self._record("refund.succeeded", refund)
        if record_payment:
            self._record("payment.updated", payment)
        if payment.status is PaymentStatus.succeeded:  # a captured-after-void payment never counted
            bill = self.bill
            assert bill is not None
            self._change(bill, now)
            bill.refunded_amount += refund.amount
            self._record("bill.updated", bill)
            self._change(self.order, now)
            self.order.refunded_amount += refund.amount
            self._record("order.updated", self.order)

    def complete_by_hand(self, now: datetime) -> None:
        """Settled outside the platform: an untouched bill is no longer collectable, a partly paid one takes no
        more payments (the order is no longer open)."""
        self._check_can_close()
        if self.bill is not None and self.bill.status is BillStatus.unpaid:
            self._void_bill(now)
        self._complete(now)

    def cancel(self, now: datetime) -> None:
        self._check_can_close()
        if self.bill is not None and self.bill.paid_amount > 0:
            raise errors.BillHasPayments()
        if self.bill is not None:
            self._void_bill(now)
        self._change(self.order, now)
        self.order.status, self.order.canceled_at = OrderStatus.canceled, now
        self._record("order.updated", self.order)

    # ------------------------------------------------------------------ helpers

    def payment(self, payment_id: str) -> Payment:
        return next(p for p in self.payments if p.id == payment_id)

    def refund_by_id(self, refund_id: str) -> Refund:
        return next(r for r in self.refunds if r.id == refund_id)

    def _new_refund(
        self,
        payment: Payment,
        refund_id: str,
        amount: int,
        reason: str | None,
        pgw_reference: str | None,
        now: datetime,
    ) -> Refund:
        self._change(payment, now)
        payment.refund_pending_amount += amount
        refund = Refund(
            id=refund_id,
            merchant_id=payment.merchant_id,
            store_id=payment.store_id,
            order_id=payment.order_id,
            bill_id=payment.bill_id,
            payment_id=payment.id,
            amount=amount,
            currency=payment.currency,
            method=payment.method,
            status=RefundStatus.pending,
            reason=reason,
            pgw_reference=None if payment.method in SETTLED_AT_ONCE else pgw_reference,
            failure_reason=None,
            version=1,
            created_at=now,
            updated_at=now,
        )
        self.refunds.append(refund)
        self.inserted.append(refund)
        self._record("refund.created", refund)
        return refund

    def _check_can_close(self) -> None:
        if self.order.status is not OrderStatus.open:
            raise errors.OrderNotOpen(f"the order is {self.order.status}; it can no longer change")
        if any(p.status is PaymentStatus.pending for p in self.payments):
            raise errors.PaymentsPending()

    def _complete(self, now: datetime) -> None:
        self._change(self.order, now)
        self.order.status, self.order.completed_at = OrderStatus.completed, now
        self._record("order.updated", self.order)

    def _void_bill(self, now: datetime) -> None:
        assert self.bill is not None
        self._change(self.bill, now)
        self.bill.status = BillStatus.void
        self._record("bill.voided", self.bill)

    def _change(self, resource: Resource, now: datetime) -> None:
        """Bump a row's version once per transition; remember the version it was loaded with (new rows are
        inserted as they end up, so they are not tracked as updates)."""
        if not any(row is resource for row in self.inserted) and resource.id not in self.updated:
            self.updated[resource.id] = (resource, resource.version)
        resource.version += 1
        resource.updated_at = now

    def _record(self, event_type: str, resource: Resource) -> None:
        self.events.append(snapshot(event_type, resource))
