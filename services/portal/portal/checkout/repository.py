"""All SQL of the checkout aggregate, on plain asyncpg (docs/adr/0002), every statement bound to a merchant.

Concurrency — optimistic first, the lock when contended:
- `orders.lock_version` counts the aggregate's changes (order, bill, payments): every save bumps it, guarded by
  the value the transition read (`UPDATE orders SET lock_version = lock_version + 1 WHERE … AND lock_version =
  $read`). Every other part of the save depends on that guard (`EXISTS (SELECT 1 FROM guard)`), so the order row
  is locked before any bill or payment row (the fixed lock order), and a save whose aggregate changed since it was
  read writes nothing: `smartpos_assert_saved` aborts the statement (SQLSTATE 40001).
- The fast path: one statement reads the whole aggregate (one snapshot), the transition runs in Python, one
  statement writes it. No BEGIN/COMMIT round trips.
- A save that lost its race is redone under the lock: BEGIN, `SELECT … FOR UPDATE` on the order row, then the
  aggregate is read again in a new statement (READ COMMITTED: a snapshot from after the wait), the transition is
  applied again, saved, COMMIT. Holding the lock, that save cannot lose.
Every update also names the row version it read (`AND version = $n`).

Writes: everything a transition changed (inserted and updated rows, its outbox events, the idempotency record,
a processed webhook, the NOTIFY for relays elsewhere) goes to PostgreSQL as one statement of data-modifying CTEs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from smartpos_shared.events import NOTIFY_CHANNEL, envelope_bytes
from smartpos_shared.ids import new_id
from smartpos_shared.pg import Db

from ..tenancy import Tenant
from . import errors
from .model import Bill, Checkout, Event, Line, Order, Payment, Refund, dumps
from .states import BillStatus, OrderStatus, PaymentMethod, PaymentStatus, RefundStatus

SOURCE = "portal"


@dataclass(frozen=True, slots=True)
class Completion:
    """The idempotency record to mark done in the same statement as the change it describes."""

    owner: str
    key: str
    status: int
    body: bytes


@dataclass(frozen=True, slots=True)
class WebhookRecord:
    event_id: str
    event_type: str
    pgw_reference: str
    payment_id: str | None
    outcome: str
    detail: bytes | None


@dataclass(frozen=True, slots=True)
class StoreCatalog:
    store_id: str
    currency: str
    products: dict[str, tuple[str, int]]  # id → (name, unit price)


_ORDER_COLUMNS = (
    "o.id, o.merchant_id, o.store_id, o.status, o.total_amount, o.currency, o.version, o.created_at, o.updated_at,"
    " o.completed_at, o.canceled_at, o.item_count, o.lock_version, o.refunded_amount, o.client_order_id,"
    " o.taken_at, o.device_id"
)
_LINES = """
    (SELECT array_agg(ROW(l.line_no, l.product_id, l.name, l.quantity, l.unit_price) ORDER BY l.line_no)
       FROM order_lines l WHERE l.order_id = o.id AND l.merchant_id = o.merchant_id) AS lines"""
_BILL_COLUMNS = (
    "b.id AS b_id, b.status AS b_status, b.total_amount AS b_total, b.paid_amount AS b_paid,"
    " b.paid_at AS b_paid_at, b.version AS b_version, b.created_at AS b_created_at, b.updated_at AS b_updated_at,"
    " b.refunded_amount AS b_refunded"
)
_PAYMENTS = """
    (SELECT array_agg(ROW(p.id, p.amount, p.method, p.status, p.pgw_reference, p.failure_reason, p.version,
                          p.created_at, p.updated_at, p.refunded_amount, p.refund_pending_amount,
                          p.captured_after_void_at, p.client_payment_id, p.taken_offline, p.device_id,
                          p.offline_auth) ORDER BY p.id)
       FROM payments p WHERE p.bill_id = b.id AND p.merchant_id = b.merchant_id) AS payments,
    (SELECT array_agg(ROW(r.id, r.payment_id, r.amount, r.method, r.status, r.reason, r.pgw_reference,
                          r.failure_reason, r.version, r.created_at, r.updated_at) ORDER BY r.id)
       FROM refunds r WHERE r.bill_id = b.id AND r.merchant_id = b.merchant_id) AS refunds"""

# The whole aggregate in one statement (one snapshot): the order, its lines, its live bill and that bill's payments.
LOAD_BY_ORDER = f"""
SELECT {_ORDER_COLUMNS}, {_LINES}, {_BILL_COLUMNS}, {_PAYMENTS}
FROM orders o
LEFT JOIN bills b ON b.order_id = o.id AND b.merchant_id = o.merchant_id AND b.status <> 'void'
WHERE o.id = $1 AND o.merchant_id = $2 AND ($3::text IS NULL OR o.store_id = $3)"""
# By a bill's id, void or not (paying a void bill is a 409, not a 404).
LOAD_BY_BILL = f"""
SELECT {_ORDER_COLUMNS}, {_LINES}, {_BILL_COLUMNS}, {_PAYMENTS}
FROM bills b JOIN orders o ON o.id = b.order_id AND o.merchant_id = b.merchant_id
WHERE b.id = $1 AND b.merchant_id = $2 AND ($3::text IS NULL OR b.store_id = $3)"""
# By a payment's id: its bill's aggregate.
LOAD_BY_PAYMENT = f"""
SELECT {_ORDER_COLUMNS}, {_LINES}, {_BILL_COLUMNS}, {_PAYMENTS}
FROM payments p0 JOIN bills b ON b.id = p0.bill_id AND b.merchant_id = p0.merchant_id
JOIN orders o ON o.id = b.order_id AND o.merchant_id = b.merchant_id
WHERE p0.id = $1 AND p0.merchant_id = $2 AND ($3::text IS NULL OR p0.store_id = $3)"""
# By the terminal's own id for the order (offline store-and-forward; unique per merchant).
LOAD_BY_CLIENT_ORDER_ID = f"""
SELECT {_ORDER_COLUMNS}, {_LINES}, {_BILL_COLUMNS}, {_PAYMENTS}
FROM orders o
LEFT JOIN bills b ON b.order_id = o.id AND b.merchant_id = o.merchant_id AND b.status <> 'void'
WHERE o.client_order_id = $1 AND o.merchant_id = $2 AND ($3::text IS NULL OR o.store_id = $3)"""
LOCK_ORDER = "SELECT id FROM orders WHERE id = $1 AND merchant_id = $2 FOR UPDATE"
LOCK_ORDER_OF_PAYMENT = """
SELECT o.id FROM orders o
WHERE o.id = (SELECT p.order_id FROM payments p WHERE p.id = $1 AND p.merchant_id = $2) AND o.merchant_id = $2
FOR UPDATE OF o"""
LOCK_ORDER_OF_BILL = """
SELECT o.id FROM orders o
WHERE o.id = (SELECT b.order_id FROM bills b WHERE b.id = $1 AND b.merchant_id = $2) AND o.merchant_id = $2
FOR UPDATE OF o"""
GET_ORDER = f"""
SELECT {_ORDER_COLUMNS}, {_LINES} FROM orders o
WHERE o.id = $1 AND o.merchant_id = $2 AND ($3::text IS NULL OR o.store_id = $3)"""

GET_BILL = """
SELECT b.id, b.merchant_id, b.store_id, b.order_id, b.status, b.total_amount, b.paid_amount, b.currency, b.paid_at,
       b.version, b.created_at, b.updated_at, b.refunded_amount
FROM bills b WHERE b.id = $1 AND b.merchant_id = $2 AND ($3::text IS NULL OR b.store_id = $3)"""

_PAYMENT_COLUMNS = """p.id, p.merchant_id, p.store_id, p.bill_id, p.order_id, p.amount, p.currency, p.method, p.status,
       p.pgw_reference, p.failure_reason, p.version, p.created_at, p.updated_at, p.refunded_amount,
       p.refund_pending_amount, p.captured_after_void_at, p.client_payment_id, p.taken_offline, p.device_id,
       p.offline_auth"""
GET_PAYMENT = f"""
SELECT {_PAYMENT_COLUMNS}
FROM payments p WHERE p.id = $1 AND p.merchant_id = $2 AND ($3::text IS NULL OR p.store_id = $3)"""
_REFUND_COLUMNS = """r.id, r.merchant_id, r.store_id, r.order_id, r.bill_id, r.payment_id, r.amount, r.currency,
       r.method, r.status, r.reason, r.pgw_reference, r.failure_reason, r.version, r.created_at, r.updated_at"""
GET_PAYMENT_BY_CLIENT_ID = f"""
SELECT {_PAYMENT_COLUMNS}
FROM payments p WHERE p.client_payment_id = $1 AND p.merchant_id = $2 AND ($3::text IS NULL OR p.store_id = $3)"""
GET_REFUND = f"""
SELECT {_REFUND_COLUMNS}
FROM refunds r WHERE r.id = $1 AND r.merchant_id = $2 AND ($3::text IS NULL OR r.store_id = $3)"""

STORE_CATALOG = """
SELECT s.id, m.currency, p.ids, p.names, p.prices
FROM stores s JOIN merchants m ON m.id = s.merchant_id,
LATERAL (SELECT array_agg(id) AS ids, array_agg(name) AS names, array_agg(unit_price) AS prices
           FROM products WHERE merchant_id = $1 AND id = ANY($3::text[]) AND active) p
WHERE s.id = $2 AND s.merchant_id = $1"""

# Tenant resolution for callers without a merchant of their own (admins, the gateway). The only queries not
# filtered by a merchant: each returns just the owner (and the ids needed to continue), and the work then goes
# on scoped to it.
RESOLVE_ORDER = "SELECT merchant_id FROM orders WHERE id = $1 /* tenant-resolution */"
RESOLVE_BILL = "SELECT merchant_id FROM bills WHERE id = $1 /* tenant-resolution */"
RESOLVE_PAYMENT = "SELECT merchant_id FROM payments WHERE id = $1 /* tenant-resolution */"
RESOLVE_STORE = "SELECT merchant_id FROM stores WHERE id = $1 /* tenant-resolution */"
RESOLVE_REFUND = "SELECT merchant_id FROM refunds WHERE id = $1 /* tenant-resolution */"
# The gateway's reference → the payment's merchant, bill and id; and whether this gateway event id was applied
# already (event ids are the gateway's, not a tenant's).
RESOLVE_REFERENCE = """
SELECT p.merchant_id, p.bill_id, p.id, EXISTS (SELECT 1 FROM processed_webhooks w WHERE w.event_id = $2) AS seen
FROM payments p WHERE p.pgw_reference = $1 /* tenant-resolution */"""
# The same for a refund's gateway reference: the refund's merchant, bill and id.
RESOLVE_REFUND_REFERENCE = """
SELECT r.merchant_id, r.bill_id, r.id, EXISTS (SELECT 1 FROM processed_webhooks w WHERE w.event_id = $2) AS seen
FROM refunds r WHERE r.pgw_reference = $1 /* tenant-resolution */"""


def _order(row: asyncpg.Record) -> Order:
    return Order(
        id=row["id"],
        merchant_id=row["merchant_id"],
        store_id=row["store_id"],
        status=OrderStatus(row["status"]),
        total_amount=row["total_amount"],
        currency=row["currency"],
        version=row["version"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        completed_at=row["completed_at"],
        canceled_at=row["canceled_at"],
        item_count=row["item_count"],
        lines=[Line(*line) for line in row["lines"] or ()],
        refunded_amount=row["refunded_amount"],
        client_order_id=row["client_order_id"],
        taken_at=row["taken_at"],
        device_id=row["device_id"],
    )


def _checkout(row: asyncpg.Record) -> Checkout:
    order = _order(row)
    checkout = Checkout(order, lock_version=row["lock_version"])
    if row["b_id"] is not None:
        checkout.bill = Bill(
            id=row["b_id"],
            merchant_id=order.merchant_id,
            store_id=order.store_id,
            order_id=order.id,
            status=BillStatus(row["b_status"]),
            total_amount=row["b_total"],
            paid_amount=row["b_paid"],
            currency=order.currency,
            paid_at=row["b_paid_at"],
            version=row["b_version"],
            created_at=row["b_created_at"],
            updated_at=row["b_updated_at"],
            refunded_amount=row["b_refunded"],
        )
        for (
            p_id,
            amount,
            method,
            status,
            reference,
            reason,
            version,
            created_at,
            updated_at,
            refunded,
            refund_pending,
            captured_after_void_at,
            client_payment_id,
            taken_offline,
            device_id,
            offline_auth,
        ) in row["payments"] or ():
            checkout.payments.append(
                Payment(
                    id=p_id,
                    merchant_id=order.merchant_id,
                    store_id=order.store_id,
                    bill_id=row["b_id"],
                    order_id=order.id,
                    amount=amount,
                    currency=order.currency,
                    method=PaymentMethod(method),
                    status=PaymentStatus(status),
                    pgw_reference=reference,
                    failure_reason=reason,
                    version=version,
                    created_at=created_at,
                    updated_at=updated_at,
                    refunded_amount=refunded,
                    refund_pending_amount=refund_pending,
                    captured_after_void_at=captured_after_void_at,
                    client_payment_id=client_payment_id,
                    taken_offline=taken_offline,
                    device_id=device_id,
                    offline_auth=offline_auth,
                )
            )
        for r_id, payment_id, amount, method, status, reason, reference, failure, version, created_at, updated_at in (
            row["refunds"] or ()
        ):
            checkout.refunds.append(
                Refund(
                    id=r_id,
                    merchant_id=order.merchant_id,
                    store_id=order.store_id,
                    order_id=order.id,
                    bill_id=row["b_id"],
                    payment_id=payment_id,
                    amount=amount,
                    currency=order.currency,
                    method=PaymentMethod(method),
                    status=RefundStatus(status),
                    reason=reason,
                    pgw_reference=reference,
                    failure_reason=failure,
                    version=version,
                    created_at=created_at,
                    updated_at=updated_at,
                )
            )
    return checkout


def bill_of(row: asyncpg.Record) -> Bill:
    return Bill(
        id=row["id"],
        merchant_id=row["merchant_id"],
        store_id=row["store_id"],
        order_id=row["order_id"],
        status=BillStatus(row["status"]),
        total_amount=row["total_amount"],
        paid_amount=row["paid_amount"],
        currency=row["currency"],
        paid_at=row["paid_at"],
        version=row["version"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        refunded_amount=row["refunded_amount"],
    )


def payment_of(row: asyncpg.Record) -> Payment:
    return Payment(
        id=row["id"],
        merchant_id=row["merchant_id"],
        store_id=row["store_id"],
        bill_id=row["bill_id"],
        order_id=row["order_id"],
        amount=row["amount"],
        currency=row["currency"],
        method=PaymentMethod(row["method"]),
        status=PaymentStatus(row["status"]),
        pgw_reference=row["pgw_reference"],
        failure_reason=row["failure_reason"],
        version=row["version"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        refunded_amount=row["refunded_amount"],
        refund_pending_amount=row["refund_pending_amount"],
        captured_after_void_at=row["captured_after_void_at"],
        client_payment_id=row["client_payment_id"],
        taken_offline=row["taken_offline"],
        device_id=row["device_id"],
        offline_auth=row["offline_auth"],
    )


def refund_of(row: asyncpg.Record) -> Refund:
    return Refund(
        id=row["id"],
        merchant_id=row["merchant_id"],
        store_id=row["store_id"],
        order_id=row["order_id"],
        bill_id=row["bill_id"],
        payment_id=row["payment_id"],
        amount=row["amount"],
        currency=row["currency"],
        method=PaymentMethod(row["method"]),
        status=RefundStatus(row["status"]),
        reason=row["reason"],
        pgw_reference=row["pgw_reference"],
        failure_reason=row["failure_reason"],
        version=row["version"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


class CheckoutRepository:
    """The one entry point to the checkout's tables for a tenant."""

    def __init__(self, db: Db, tenant: Tenant) -> None:
        self.db = db
        self.tenant = tenant

    # ------------------------------------------------------------------ reads

    async def store_catalog(self, store_id: str, product_ids: Sequence[str]) -> StoreCatalog | None:
        row = await self.db.fetchrow(STORE_CATALOG, self.tenant.merchant_id, store_id, list(product_ids))
        if row is None:
            return None
        products = dict(zip(row["ids"] or (), zip(row["names"] or (), row["prices"] or (), strict=True), strict=True))
        return StoreCatalog(row["id"], row["currency"], products)

    async def get_order(self, order_id: str) -> Order | None:
        row = await self.db.fetchrow(GET_ORDER, order_id, self.tenant.merchant_id, self.tenant.store_id)
        return _order(row) if row is not None else None

    async def get_bill(self, bill_id: str) -> Bill | None:
        row = await self.db.fetchrow(GET_BILL, bill_id, self.tenant.merchant_id, self.tenant.store_id)
        return bill_of(row) if row is not None else None

    async def get_payment(self, payment_id: str) -> Payment | None:
        row = await self.db.fetchrow(GET_PAYMENT, payment_id, self.tenant.merchant_id, self.tenant.store_id)
        return payment_of(row) if row is not None else None

    async def load_by_client_order_id(self, client_order_id: str) -> Checkout | None:
        row = await self.db.fetchrow(
            LOAD_BY_CLIENT_ORDER_ID, client_order_id, self.tenant.merchant_id, self.tenant.store_id
        )
        return _checkout(row) if row is not None else None

    async def client_order_id_taken(self, client_order_id: str) -> bool:
        """Whether this merchant has an order with this terminal id (in any store: ids are the merchant's)."""
        return bool(
            await self.db.fetchval(
                "SELECT EXISTS (SELECT 1 FROM orders WHERE merchant_id = $1 AND client_order_id = $2)",
                self.tenant.merchant_id,
                client_order_id,
            )
        )

    async def payments_by_client_ids(self, client_payment_ids: Sequence[str]) -> list[Payment]:
        """This merchant's payments with these terminal ids, whatever bill or store they are on."""
        rows = await self.db.fetch(
            f"SELECT {_PAYMENT_COLUMNS} FROM payments p WHERE p.merchant_id = $1 AND p.client_payment_id = ANY($2)",
            self.tenant.merchant_id,
            list(client_payment_ids),
        )
        return [payment_of(row) for row in rows]

    async def get_payment_by_client_id(self, client_payment_id: str) -> Payment | None:
        row = await self.db.fetchrow(
            GET_PAYMENT_BY_CLIENT_ID, client_payment_id, self.tenant.merchant_id, self.tenant.store_id
        )
        return payment_of(row) if row is not None else None

    async def offline_limits(self) -> tuple[int | None, int | None, int]:
        row = await self.db.fetchrow(
            "SELECT offline_max_payment_amount, offline_max_outstanding_amount, offline_max_age_hours"
            " FROM merchants WHERE id = $1",
            self.tenant.merchant_id,
        )
        assert row is not None, "the token names an existing merchant"
        return row[0], row[1], row[2]

    async def lock_device(self, device_id: str) -> None:
        """Serialize one terminal's offline entries (until the transaction ends)."""
        assert self.db.in_transaction, "a transaction-scoped lock"
        await self.db.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended('smartpos:offline:' || $1 || ':' || $2, 0))",
            self.tenant.merchant_id,
            device_id,
        )

    async def offline_outstanding(self, device_id: str) -> int:
        """Card and qr payments this terminal took offline that the gateway has not confirmed yet."""
        total: int = await self.db.fetchval(
            "SELECT coalesce(sum(amount), 0) FROM payments"
            " WHERE merchant_id = $1 AND device_id = $2 AND taken_offline AND status = 'pending'",
            self.tenant.merchant_id,
            device_id,
        )
        return total

    async def get_refund(self, refund_id: str) -> Refund | None:
        row = await self.db.fetchrow(GET_REFUND, refund_id, self.tenant.merchant_id, self.tenant.store_id)
        return refund_of(row) if row is not None else None

    async def list_payments(
        self, bill_id: str | None, status: PaymentStatus | None, before_id: str | None, limit: int
    ) -> list[Payment]:
        conditions = ["p.merchant_id = $1", "($2::text IS NULL OR p.store_id = $2)"]
        args: list[Any] = [self.tenant.merchant_id, self.tenant.store_id]
        for column, value in (("p.bill_id =", bill_id), ("p.status =", status), ("p.id <", before_id)):
            if value is not None:
                args.append(str(value))
                conditions.append(f"{column} ${len(args)}")
        args.append(limit + 1)
        sql = (
            f"SELECT {_PAYMENT_COLUMNS} FROM payments p WHERE {' AND '.join(conditions)}"
            f" ORDER BY p.id DESC LIMIT ${len(args)}"
        )
        return [payment_of(row) for row in await self.db.fetch(sql, *args)]

    async def list_refunds(self, payment_id: str | None, before_id: str | None, limit: int) -> list[Refund]:
        conditions = ["r.merchant_id = $1", "($2::text IS NULL OR r.store_id = $2)"]
        args: list[Any] = [self.tenant.merchant_id, self.tenant.store_id]
        for column, value in (("r.payment_id =", payment_id), ("r.id <", before_id)):
            if value is not None:
                args.append(value)
                conditions.append(f"{column} ${len(args)}")
        args.append(limit + 1)
        sql = (
            f"SELECT {_REFUND_COLUMNS} FROM refunds r WHERE {' AND '.join(conditions)}"
            f" ORDER BY r.id DESC LIMIT ${len(args)}"
        )
        return [refund_of(row) for row in await self.db.fetch(sql, *args)]

    async def list_orders(
        self, store_id: str | None, status: OrderStatus | None, before_id: str | None, limit: int
    ) -> list[Order]:
        conditions = ["o.merchant_id = $1", "($2::text IS NULL OR o.store_id = $2)"]
        args: list[Any] = [self.tenant.merchant_id, self.tenant.store_id]
        if store_id is not None:
            args.append(store_id)
            conditions.append(f"o.store_id = ${len(args)}")
        if status is not None:
            args.append(status.value)
            conditions.append(f"o.status = ${len(args)}")
        if before_id is not None:
            args.append(before_id)
            conditions.append(f"o.id < ${len(args)}")
        args.append(limit + 1)
        sql = (
            f"SELECT {_ORDER_COLUMNS}, {_LINES} FROM orders o WHERE {' AND '.join(conditions)}"
            f" ORDER BY o.id DESC LIMIT ${len(args)}"
        )
        return [_order(row) for row in await self.db.fetch(sql, *args)]

    # ------------------------------------------------------------------ the aggregate

    async def load_by_order(self, order_id: str) -> Checkout | None:
        row = await self.db.fetchrow(LOAD_BY_ORDER, order_id, self.tenant.merchant_id, self.tenant.store_id)
        return _checkout(row) if row is not None else None

    async def load_by_bill(self, bill_id: str) -> Checkout | None:
        row = await self.db.fetchrow(LOAD_BY_BILL, bill_id, self.tenant.merchant_id, self.tenant.store_id)
        return _checkout(row) if row is not None else None

    async def load_by_payment(self, payment_id: str) -> Checkout | None:
        row = await self.db.fetchrow(LOAD_BY_PAYMENT, payment_id, self.tenant.merchant_id, self.tenant.store_id)
        return _checkout(row) if row is not None else None

    async def lock_by_payment(self, payment_id: str) -> Checkout | None:
        assert self.db.in_transaction, "a lock outside a transaction is released at once"
        if await self.db.fetchval(LOCK_ORDER_OF_PAYMENT, payment_id, self.tenant.merchant_id) is None:
            return None
        return await self.load_by_payment(payment_id)

    async def lock_by_order(self, order_id: str) -> Checkout | None:
        """Take the aggregate's lock (the order row), then read it in a new statement (a fresh snapshot)."""
        assert self.db.in_transaction, "a lock outside a transaction is released at once"
        if await self.db.fetchval(LOCK_ORDER, order_id, self.tenant.merchant_id) is None:
            return None
        return await self.load_by_order(order_id)

    async def lock_by_bill(self, bill_id: str) -> Checkout | None:
        assert self.db.in_transaction, "a lock outside a transaction is released at once"
        if await self.db.fetchval(LOCK_ORDER_OF_BILL, bill_id, self.tenant.merchant_id) is None:
            return None
        return await self.load_by_bill(bill_id)

    # ------------------------------------------------------------------ writes

    async def save(
        self,
        checkout: Checkout,
        now: datetime,
        *,
        completion: Completion | None = None,
        webhook: WebhookRecord | None = None,
        notify: bool = False,
    ) -> bool:
        """Persist everything the transitions changed, their events, and the records that go with them, in one
        statement. False when the aggregate changed since it was read (nothing was written)."""
        statement = _Statement(self.tenant.merchant_id, checkout)
        for resource in checkout.inserted:
            statement.insert(resource)
        for resource, loaded_version in checkout.updated.values():
            if resource.id != statement.guarded_order:
                statement.update(resource, loaded_version)
        statement.events(checkout.events, now)
        if completion is not None:
            statement.complete_idempotency(completion)
        if webhook is not None:
            statement.record_webhook(webhook, now)
        if notify and checkout.events:
            statement.notify()
        try:
            await self.db.fetchrow(*statement.sql())
        except asyncpg.SerializationError:
            return False  # raised by smartpos_assert_saved: a concurrent save was first
        except asyncpg.UniqueViolationError as exc:
            if exc.constraint_name == "uq_bills_live_order_id":
                raise errors.BillExists() from None
            if exc.constraint_name == "uq_orders_merchant_id_client_order_id":
                raise errors.ClientIdTaken("order") from None
            if exc.constraint_name == "uq_payments_merchant_id_client_payment_id":
                raise errors.ClientIdTaken("payment") from None
            raise
        return True

    async def record_webhook_only(
        self, webhook: WebhookRecord, now: datetime, mismatch: tuple[str | None, dict[str, Any]] | None = None
    ) -> bool:
        """A webhook that changes no payment (ignored, mismatched): recorded once; False if already there. A
        mismatched one (`mismatch`: the store and what differs) is also an event, `payment.webhook_mismatch`, in
        the same statement: pilots are watched for them (console's pilot health)."""
        detail = webhook.detail.decode() if webhook.detail is not None else None
        args: list[Any] = [webhook.event_id, webhook.event_type, webhook.pgw_reference, webhook.payment_id,
                           webhook.outcome, detail, now]  # fmt: skip
        event = ""
        if mismatch is not None:
            event_id = new_id("evt")
            store_id, data = mismatch
            payload = envelope_bytes(
                event_id=event_id,
                event_type="payment.webhook_mismatch",
                source=SOURCE,
                time=now,
                merchant_id=self.tenant.merchant_id,
                store_id=store_id,
                subject=webhook.payment_id or "",
                version=1,
                data=dumps(data),
            ).decode()
            args += [event_id, self.tenant.merchant_id, store_id, payload]
            event = (
                ", e AS (INSERT INTO outbox (id, type, merchant_id, store_id, subject, version, payload, created_at)"
                " SELECT $8, 'payment.webhook_mismatch', $9, $10, $4, 1, $11::jsonb, $7 FROM w RETURNING 1)"
                f", n AS (SELECT pg_notify('{NOTIFY_CHANNEL}', '') FROM e)"
            )
        found = await self.db.fetchval(
            "WITH w AS (INSERT INTO processed_webhooks (event_id, event_type, pgw_reference, payment_id, outcome,"
            " detail, received_at) VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7) ON CONFLICT DO NOTHING RETURNING true)"
            f"{event} SELECT true FROM w" + (" WHERE (SELECT count(*) FROM n) >= 0" if event else ""),
            *args,
        )
        return found is not None


class _Statement:
    """Builds the one write statement: each part a data-modifying CTE, parameters numbered as they are added.

    With a guard (an existing aggregate), the guard's UPDATE of the order row comes first and every other part
    depends on it; the final SELECT asserts the guard and every version-checked update matched one row."""

    def __init__(self, merchant_id: str, checkout: Checkout) -> None:
        self.args: list[Any] = [merchant_id]
        self.parts: list[str] = []
        self.checked: list[str] = []  # CTEs that must have changed exactly one row
        self.guard: str | None = None
        self.guarded_order: str | None = None  # the order's own update, when the guard's UPDATE carries it
        self.notified: str | None = None
        self.after_guard = ""
        order = checkout.order
        if checkout.lock_version is not None and not any(row is order for row in checkout.inserted):
            a = self._arg
            extra = ""
            version_check = ""
            if order.id in checkout.updated:  # the order changes too: one UPDATE of its row does both
                extra = self._order_changes(order) + ", "
                version_check = f" AND version = {a(checkout.updated[order.id][1])}"
                self.guarded_order = order.id
            self.guard = self._part(
                f"UPDATE orders SET {extra}lock_version = lock_version + 1"
                f" WHERE id = {a(order.id)} AND merchant_id = $1 AND lock_version = {a(checkout.lock_version)}"
                f"{version_check} RETURNING 1"
            )
            self.checked.append(self.guard)
            self.after_guard = f" AND EXISTS (SELECT 1 FROM {self.guard})"

    def _arg(self, value: Any) -> str:
        self.args.append(value)
        return f"${len(self.args)}"

    def _part(self, sql: str) -> str:
        name = f"w{len(self.parts)}"
        self.parts.append(f"{name} AS ({sql})")
        return name

    def _when(self) -> str:
        """A WHERE clause for INSERT … SELECT parts: only once the guard passed (always true without a guard)."""
        return f" WHERE EXISTS (SELECT 1 FROM {self.guard})" if self.guard else ""

    def insert(self, resource: Order | Bill | Payment | Refund) -> None:
        a, when = self._arg, self._when()
        if isinstance(resource, Order):
            o = resource
            self._part(
                "INSERT INTO orders (id, merchant_id, store_id, status, total_amount, currency, version, created_at,"
                " updated_at, completed_at, canceled_at, item_count, client_order_id, taken_at, device_id)"
                f" SELECT {a(o.id)}::text, $1::text, {a(o.store_id)}::text, {a(o.status.value)}::text,"
                f" {a(o.total_amount)}::bigint, {a(o.currency)}::text, {a(o.version)}::int,"
                f" {a(o.created_at)}::timestamptz, {a(o.updated_at)}::timestamptz, {a(o.completed_at)}::timestamptz,"
                f" {a(o.canceled_at)}::timestamptz, {a(o.item_count)}::int, {a(o.client_order_id)}::text,"
                f" {a(o.taken_at)}::timestamptz, {a(o.device_id)}::text{when}"
            )
            self._part(
                "INSERT INTO order_lines (order_id, line_no, merchant_id, product_id, name, quantity, unit_price,"
                f" line_total) SELECT {a(o.id)}::text, u.line_no, $1::text, u.product_id, u.name, u.quantity,"
                " u.unit_price, u.unit_price * u.quantity"
                f" FROM unnest({a([x.line_no for x in o.lines])}::int[], {a([x.product_id for x in o.lines])}::text[],"
                f" {a([x.name for x in o.lines])}::text[], {a([x.quantity for x in o.lines])}::int[],"
                f" {a([x.unit_price for x in o.lines])}::bigint[])"
                f" AS u(line_no, product_id, name, quantity, unit_price){when}"
            )
        elif isinstance(resource, Bill):
            b = resource
            self._part(
                "INSERT INTO bills (id, merchant_id, store_id, order_id, status, total_amount, paid_amount, currency,"
                " paid_at, version, created_at, updated_at)"
                f" SELECT {a(b.id)}::text, $1::text, {a(b.store_id)}::text, {a(b.order_id)}::text,"
                f" {a(b.status.value)}::text, {a(b.total_amount)}::bigint, {a(b.paid_amount)}::bigint,"
                f" {a(b.currency)}::text,"
                f" {a(b.paid_at)}::timestamptz, {a(b.version)}::int, {a(b.created_at)}::timestamptz,"
                f" {a(b.updated_at)}::timestamptz{when}"
            )
        elif isinstance(resource, Refund):
            r = resource
            self._part(
                "INSERT INTO refunds (id, merchant_id, store_id, order_id, bill_id, payment_id, amount, currency,"
                " method, status, reason, pgw_reference, failure_reason, version, created_at, updated_at)"
                f" SELECT {a(r.id)}::text, $1::text, {a(r.store_id)}::text, {a(r.order_id)}::text,"
                f" {a(r.bill_id)}::text, {a(r.payment_id)}::text, {a(r.amount)}::bigint, {a(r.currency)}::text,"
                f" {a(r.method.value)}::text, {a(r.status.value)}::text, {a(r.reason)}::text,"
                f" {a(r.pgw_reference)}::text, {a(r.failure_reason)}::text, {a(r.version)}::int,"
                f" {a(r.created_at)}::timestamptz, {a(r.updated_at)}::timestamptz{when}"
            )
        else:
            p = resource
            self._part(
                "INSERT INTO payments (id, merchant_id, store_id, bill_id, order_id, amount, currency, method, status,"
                " pgw_reference, failure_reason, version, created_at, updated_at, client_payment_id, taken_offline,"
                " device_id, offline_auth, succeeded_at)"
                f" SELECT {a(p.id)}::text, $1::text, {a(p.store_id)}::text, {a(p.bill_id)}::text,"
                f" {a(p.order_id)}::text, {a(p.amount)}::bigint, {a(p.currency)}::text, {a(p.method.value)}::text,"
                f" {a(p.status.value)}::text,"
                f" {a(p.pgw_reference)}::text, {a(p.failure_reason)}::text, {a(p.version)}::int,"
                f" {a(p.created_at)}::timestamptz, {a(p.updated_at)}::timestamptz, {a(p.client_payment_id)}::text,"
                f" {a(p.taken_offline)}::boolean, {a(p.device_id)}::text, {a(p.offline_auth)}::text,"
                f" {a(p.succeeded_at)}::timestamptz{when}"
            )

    def _order_changes(self, o: Order) -> str:
        a = self._arg
        return (
            f"status = {a(o.status.value)}, version = {a(o.version)}, updated_at = {a(o.updated_at)},"
            f" completed_at = {a(o.completed_at)}::timestamptz, canceled_at = {a(o.canceled_at)}::timestamptz,"
            f" refunded_amount = {a(o.refunded_amount)}::bigint"
        )

    def update(self, resource: Order | Bill | Payment | Refund, loaded_version: int) -> None:
        a = self._arg
        if isinstance(resource, Order):
            table, changes = "orders", self._order_changes(resource)
        elif isinstance(resource, Bill):
            b = resource
            table = "bills"
            changes = (
                f"status = {a(b.status.value)}, paid_amount = {a(b.paid_amount)},"
                f" paid_at = {a(b.paid_at)}::timestamptz, version = {a(b.version)}, updated_at = {a(b.updated_at)},"
                f" refunded_amount = {a(b.refunded_amount)}::bigint"
            )
        elif isinstance(resource, Refund):
            r = resource
            table = "refunds"
            changes = (
                f"status = {a(r.status.value)}, failure_reason = {a(r.failure_reason)}::text,"
                f" version = {a(r.version)}, updated_at = {a(r.updated_at)}"
            )
        else:
            p = resource
            table = "payments"
            changes = (
                f"status = {a(p.status.value)}, failure_reason = {a(p.failure_reason)}::text,"
                f" version = {a(p.version)}, updated_at = {a(p.updated_at)},"
                f" refunded_amount = {a(p.refunded_amount)}::bigint,"
                f" refund_pending_amount = {a(p.refund_pending_amount)}::bigint,"
                f" captured_after_void_at = {a(p.captured_after_void_at)}::timestamptz,"
                f" succeeded_at = coalesce(succeeded_at, {a(p.succeeded_at)}::timestamptz)"
            )
        name = self._part(
            f"UPDATE {table} SET {changes} WHERE id = {a(resource.id)} AND merchant_id = $1"
            f" AND version = {a(loaded_version)}{self.after_guard} RETURNING 1"
        )
        self.checked.append(name)

    def events(self, events: list[Event], now: datetime) -> None:
        if not events:
            return
        ids = [new_id("evt") for _ in events]
        payloads = [
            envelope_bytes(
                event_id=event_id,
                event_type=event.type,
                source=SOURCE,
                time=now,
                merchant_id=self.args[0],
                store_id=event.store_id,
                subject=event.subject,
                version=event.version,
                data=event.data,
            ).decode()
            for event_id, event in zip(ids, events, strict=True)
        ]
        a = self._arg
        self._part(
            "INSERT INTO outbox (id, type, merchant_id, store_id, subject, version, payload, created_at)"
            f" SELECT u.id, u.type, $1::text, u.store_id, u.subject, u.version, u.payload, {a(now)}::timestamptz"
            f" FROM unnest({a(ids)}::text[], {a([e.type for e in events])}::text[],"
            f" {a([e.store_id for e in events])}::text[], {a([e.subject for e in events])}::text[],"
            f" {a([e.version for e in events])}::int[], {a(payloads)}::jsonb[])"
            f" AS u(id, type, store_id, subject, version, payload){self._when()}"
        )

    def complete_idempotency(self, completion: Completion) -> None:
        a = self._arg
        self._part(
            f"UPDATE idempotency_keys SET state = 'done', response_status = {a(completion.status)},"
            f" response_body = {a(completion.body.decode())}::jsonb"
            f" WHERE owner = {a(completion.owner)} AND key = {a(completion.key)}{self.after_guard}"
        )

    def record_webhook(self, webhook: WebhookRecord, now: datetime) -> None:
        a = self._arg
        detail = webhook.detail.decode() if webhook.detail is not None else None
        self._part(
            "INSERT INTO processed_webhooks (event_id, event_type, pgw_reference, payment_id, outcome, detail,"
            f" received_at) SELECT {a(webhook.event_id)}::text, {a(webhook.event_type)}::text,"
            f" {a(webhook.pgw_reference)}::text, {a(webhook.payment_id)}::text, {a(webhook.outcome)}::text,"
            f" {a(detail)}::jsonb, {a(now)}::timestamptz{self._when()}"
        )

    def notify(self) -> None:
        # Relays in other processes LISTEN: delivered at commit, no extra round trip.
        self.notified = self._part(f"SELECT pg_notify('{NOTIFY_CHANNEL}', ''){self._when()}")

    def sql(self) -> tuple[Any, ...]:
        exactly_one = " AND ".join(f"(SELECT count(*) FROM {name}) = 1" for name in self.checked) or "true"
        select = f"SELECT smartpos_assert_saved({exactly_one})" + (
            f", (SELECT count(*) FROM {self.notified}) AS notified" if self.notified else ""
        )
        return ("WITH " + ",\n".join(self.parts) + "\n" + select, *self.args)


async def resolve_merchant(db: Db, query: str, resource_id: str) -> str | None:
    merchant_id: str | None = await db.fetchval(query, resource_id)
    return merchant_id


async def resolve_reference(db: Db, pgw_reference: str, event_id: str) -> asyncpg.Record | None:
    return await db.fetchrow(RESOLVE_REFERENCE, pgw_reference, event_id)


async def resolve_refund_reference(db: Db, pgw_reference: str, event_id: str) -> asyncpg.Record | None:
    return await db.fetchrow(RESOLVE_REFUND_REFERENCE, pgw_reference, event_id)
