"""All SQL of the checkout aggregate, on plain asyncpg (docs/adr/0002), every statement bound to a merchant.

Locking: the order row is the aggregate's lock. A transition loads it `FOR UPDATE` first, then reads the bill and
its payments in a *new* statement, whose snapshot (READ COMMITTED) sees everything committed by the previous
holder of the lock; reading them in the locking statement would give a snapshot from before the wait. Every
update also names the version it read (`AND version = $n`): a row changed behind the lock fails the whole save
instead of being overwritten.

Writes: everything a transition changed (inserted and updated rows, its outbox events, the idempotency record,
a processed webhook) goes to PostgreSQL as one statement of data-modifying CTEs.
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
from .model import Bill, Checkout, Event, Line, Order, Payment
from .states import BillStatus, OrderStatus, PaymentMethod, PaymentStatus

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
    " o.completed_at, o.canceled_at, o.item_count"
)
# Lines are immutable: reading them in the locking statement is safe.
_LINES = """
    (SELECT array_agg(ROW(l.line_no, l.product_id, l.name, l.quantity, l.unit_price) ORDER BY l.line_no)
       FROM order_lines l WHERE l.order_id = o.id AND l.merchant_id = o.merchant_id) AS lines"""
_STORE_SCOPE = "($3::text IS NULL OR o.store_id = $3)"

LOCK_ORDER = f"""
SELECT {_ORDER_COLUMNS}, {_LINES} FROM orders o
WHERE o.id = $1 AND o.merchant_id = $2 AND {_STORE_SCOPE}
FOR UPDATE OF o"""
LOCK_ORDER_OF_BILL = f"""
SELECT {_ORDER_COLUMNS}, {_LINES} FROM orders o
WHERE o.id = (SELECT b.order_id FROM bills b WHERE b.id = $1 AND b.merchant_id = $2) AND o.merchant_id = $2
  AND {_STORE_SCOPE}
FOR UPDATE OF o"""
GET_ORDER = f"SELECT {_ORDER_COLUMNS}, {_LINES} FROM orders o WHERE o.id = $1 AND o.merchant_id = $2 AND {_STORE_SCOPE}"

# The live bill (or the one asked for by id, even if void) and its payments, read after the order lock (fresh
# snapshot); one row per payment.
BILL_AND_PAYMENTS = """
SELECT b.id, b.store_id, b.status, b.total_amount, b.paid_amount, b.currency, b.paid_at, b.version, b.created_at,
       b.updated_at,
       p.id AS p_id, p.amount AS p_amount, p.method AS p_method, p.status AS p_status, p.pgw_reference AS p_ref,
       p.failure_reason AS p_reason, p.version AS p_version, p.created_at AS p_created_at,
       p.updated_at AS p_updated_at
FROM bills b LEFT JOIN payments p ON p.bill_id = b.id AND p.merchant_id = b.merchant_id
WHERE b.order_id = $1 AND b.merchant_id = $2 AND (b.status <> 'void' OR b.id = $3)
ORDER BY p.id"""

GET_BILL = """
SELECT b.id, b.merchant_id, b.store_id, b.order_id, b.status, b.total_amount, b.paid_amount, b.currency, b.paid_at,
       b.version, b.created_at, b.updated_at
FROM bills b WHERE b.id = $1 AND b.merchant_id = $2 AND ($3::text IS NULL OR b.store_id = $3)"""

GET_PAYMENT = """
SELECT p.id, p.merchant_id, p.store_id, p.bill_id, p.order_id, p.amount, p.currency, p.method, p.status,
       p.pgw_reference, p.failure_reason, p.version, p.created_at, p.updated_at
FROM payments p WHERE p.id = $1 AND p.merchant_id = $2 AND ($3::text IS NULL OR p.store_id = $3)"""

STORE_CATALOG = """
SELECT s.id, m.currency, p.ids, p.names, p.prices
FROM stores s JOIN merchants m ON m.id = s.merchant_id,
LATERAL (SELECT array_agg(id) AS ids, array_agg(name) AS names, array_agg(unit_price) AS prices
           FROM products WHERE merchant_id = $1 AND id = ANY($3::text[])) p
WHERE s.id = $2 AND s.merchant_id = $1"""

# Tenant resolution for callers without a merchant of their own (admins, the gateway). The only queries not
# filtered by a merchant: each returns just the merchant that owns the resource, and nothing else is read
# before the work continues scoped to it.
RESOLVE_ORDER = "SELECT merchant_id FROM orders WHERE id = $1 /* tenant-resolution */"
RESOLVE_BILL = "SELECT merchant_id FROM bills WHERE id = $1 /* tenant-resolution */"
RESOLVE_PAYMENT = "SELECT merchant_id FROM payments WHERE id = $1 /* tenant-resolution */"
RESOLVE_STORE = "SELECT merchant_id FROM stores WHERE id = $1 /* tenant-resolution */"
# The gateway's reference → the payment's merchant, order and id; and whether this gateway event id was applied
# already (event ids are the gateway's, not a tenant's).
RESOLVE_REFERENCE = """
SELECT p.merchant_id, p.order_id, p.id, EXISTS (SELECT 1 FROM processed_webhooks w WHERE w.event_id = $2) AS seen
FROM payments p WHERE p.pgw_reference = $1 /* tenant-resolution */"""


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
    )


def _bill(row: asyncpg.Record, merchant_id: str, order_id: str) -> Bill:
    return Bill(
        id=row["id"],
        merchant_id=merchant_id,
        store_id=row["store_id"],
        order_id=order_id,
        status=BillStatus(row["status"]),
        total_amount=row["total_amount"],
        paid_amount=row["paid_amount"],
        currency=row["currency"],
        paid_at=row["paid_at"],
        version=row["version"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def bill_of(row: asyncpg.Record) -> Bill:
    return _bill(row, row["merchant_id"], row["order_id"])


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
    )


class CheckoutRepository:
    """The one entry point to the checkout's tables for a tenant."""

    def __init__(self, db: Db, tenant: Tenant) -> None:
        self.db = db
        self.tenant = tenant

    # ------------------------------------------------------------------ reads (no lock)

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

    # ------------------------------------------------------------------ the aggregate, locked

    async def lock_by_order(self, order_id: str) -> Checkout | None:
        """Take the order's lock, then load its live bill and payments."""
        row = await self.db.fetchrow(LOCK_ORDER, order_id, self.tenant.merchant_id, self.tenant.store_id)
        return await self._load(row)

    async def lock_by_bill(self, bill_id: str) -> Checkout | None:
        row = await self.db.fetchrow(LOCK_ORDER_OF_BILL, bill_id, self.tenant.merchant_id, self.tenant.store_id)
        return await self._load(row, bill_id)

    async def _load(self, row: asyncpg.Record | None, bill_id: str | None = None) -> Checkout | None:
        if row is None:
            return None
        assert self.db.in_transaction, "a lock outside a transaction is released at once"
        checkout = Checkout(_order(row))
        order = checkout.order
        for bill_row in await self.db.fetch(BILL_AND_PAYMENTS, order.id, order.merchant_id, bill_id):
            if checkout.bill is None:
                checkout.bill = _bill(bill_row, order.merchant_id, order.id)
            if bill_row["p_id"] is not None:
                checkout.payments.append(
                    Payment(
                        id=bill_row["p_id"],
                        merchant_id=order.merchant_id,
                        store_id=order.store_id,
                        bill_id=bill_row["id"],
                        order_id=order.id,
                        amount=bill_row["p_amount"],
                        currency=bill_row["currency"],
                        method=PaymentMethod(bill_row["p_method"]),
                        status=PaymentStatus(bill_row["p_status"]),
                        pgw_reference=bill_row["p_ref"],
                        failure_reason=bill_row["p_reason"],
                        version=bill_row["p_version"],
                        created_at=bill_row["p_created_at"],
                        updated_at=bill_row["p_updated_at"],
                    )
                )
        return checkout

    # ------------------------------------------------------------------ writes

    async def save(
        self,
        checkout: Checkout,
        now: datetime,
        *,
        completion: Completion | None = None,
        webhook: WebhookRecord | None = None,
        notify: bool = False,
    ) -> None:
        """Persist everything the transitions changed, their events, and the records that go with them, in one
        statement. Raises ConcurrentChange if an updated row was not at the version it was loaded with."""
        statement = _Statement(self.tenant.merchant_id)
        for resource in checkout.inserted:
            statement.insert(resource)
        for resource, loaded_version in checkout.updated.values():
            statement.update(resource, loaded_version)
        statement.events(checkout.events, now)
        if completion is not None:
            statement.complete_idempotency(completion)
        if webhook is not None:
            statement.record_webhook(webhook, now)
        if notify and checkout.events:
            statement.notify()
        try:
            row = await self.db.fetchrow(*statement.sql())
        except asyncpg.UniqueViolationError as exc:
            if exc.constraint_name == "uq_bills_live_order_id":
                raise errors.BillExists() from None
            raise
        assert row is not None
        if any(row[name] != expected for name, expected in statement.expected_updates.items()):
            raise errors.ConcurrentChange()

    async def record_webhook_only(self, webhook: WebhookRecord, now: datetime) -> bool:
        """A webhook that changes no payment (ignored, mismatched): recorded once; False if already there."""
        return (
            await self.db.fetchval(
                "INSERT INTO processed_webhooks (event_id, event_type, pgw_reference, payment_id, outcome, detail,"
                " received_at) VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7) ON CONFLICT DO NOTHING RETURNING true",
                webhook.event_id,
                webhook.event_type,
                webhook.pgw_reference,
                webhook.payment_id,
                webhook.outcome,
                webhook.detail.decode() if webhook.detail is not None else None,
                now,
            )
            is not None
        )


class _Statement:
    """Builds the one write statement: each part a data-modifying CTE, parameters numbered as they are added."""

    def __init__(self, merchant_id: str) -> None:
        self.args: list[Any] = [merchant_id]
        self.parts: list[str] = []
        self.expected_updates: dict[str, int] = {}

    def _arg(self, value: Any) -> str:
        self.args.append(value)
        return f"${len(self.args)}"

    def _part(self, sql: str) -> str:
        name = f"w{len(self.parts)}"
        self.parts.append(f"{name} AS ({sql})")
        return name

    def insert(self, resource: Order | Bill | Payment) -> None:
        a = self._arg
        if isinstance(resource, Order):
            o = resource
            self._part(
                "INSERT INTO orders (id, merchant_id, store_id, status, total_amount, currency, version, created_at,"
                f" updated_at, completed_at, canceled_at, item_count) VALUES ({a(o.id)}, $1, {a(o.store_id)},"
                f" {a(o.status.value)}, {a(o.total_amount)}, {a(o.currency)}, {a(o.version)}, {a(o.created_at)},"
                f" {a(o.updated_at)}, {a(o.completed_at)}::timestamptz, {a(o.canceled_at)}::timestamptz,"
                f" {a(o.item_count)})"
            )
            self._part(
                "INSERT INTO order_lines (order_id, line_no, merchant_id, product_id, name, quantity, unit_price,"
                f" line_total) SELECT {a(o.id)}, u.line_no, $1, u.product_id, u.name, u.quantity, u.unit_price,"
                " u.unit_price * u.quantity"
                f" FROM unnest({a([x.line_no for x in o.lines])}::int[], {a([x.product_id for x in o.lines])}::text[],"
                f" {a([x.name for x in o.lines])}::text[], {a([x.quantity for x in o.lines])}::int[],"
                f" {a([x.unit_price for x in o.lines])}::bigint[])"
                " AS u(line_no, product_id, name, quantity, unit_price)"
            )
        elif isinstance(resource, Bill):
            b = resource
            self._part(
                "INSERT INTO bills (id, merchant_id, store_id, order_id, status, total_amount, paid_amount, currency,"
                f" paid_at, version, created_at, updated_at) VALUES ({a(b.id)}, $1, {a(b.store_id)}, {a(b.order_id)},"
                f" {a(b.status.value)}, {a(b.total_amount)}, {a(b.paid_amount)}, {a(b.currency)},"
                f" {a(b.paid_at)}::timestamptz, {a(b.version)}, {a(b.created_at)}, {a(b.updated_at)})"
            )
        else:
            p = resource
            self._part(
                "INSERT INTO payments (id, merchant_id, store_id, bill_id, order_id, amount, currency, method, status,"
                f" pgw_reference, failure_reason, version, created_at, updated_at) VALUES ({a(p.id)}, $1,"
                f" {a(p.store_id)}, {a(p.bill_id)}, {a(p.order_id)}, {a(p.amount)}, {a(p.currency)},"
                f" {a(p.method.value)}, {a(p.status.value)}, {a(p.pgw_reference)}::text, {a(p.failure_reason)}::text,"
                f" {a(p.version)}, {a(p.created_at)}, {a(p.updated_at)})"
            )

    def update(self, resource: Order | Bill | Payment, loaded_version: int) -> None:
        a = self._arg
        if isinstance(resource, Order):
            o = resource
            sql = (
                f"UPDATE orders SET status = {a(o.status.value)}, version = {a(o.version)},"
                f" updated_at = {a(o.updated_at)}, completed_at = {a(o.completed_at)}::timestamptz,"
                f" canceled_at = {a(o.canceled_at)}::timestamptz"
            )
        elif isinstance(resource, Bill):
            b = resource
            sql = (
                f"UPDATE bills SET status = {a(b.status.value)}, paid_amount = {a(b.paid_amount)},"
                f" paid_at = {a(b.paid_at)}::timestamptz, version = {a(b.version)}, updated_at = {a(b.updated_at)}"
            )
        else:
            p = resource
            sql = (
                f"UPDATE payments SET status = {a(p.status.value)}, failure_reason = {a(p.failure_reason)}::text,"
                f" version = {a(p.version)}, updated_at = {a(p.updated_at)}"
            )
        sql += f" WHERE id = {a(resource.id)} AND merchant_id = $1 AND version = {a(loaded_version)} RETURNING 1"
        name = self._part(sql)
        self.expected_updates[name] = 1

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
            f" SELECT u.id, u.type, $1, u.store_id, u.subject, u.version, u.payload, {a(now)}"
            f" FROM unnest({a(ids)}::text[], {a([e.type for e in events])}::text[],"
            f" {a([e.store_id for e in events])}::text[], {a([e.subject for e in events])}::text[],"
            f" {a([e.version for e in events])}::int[], {a(payloads)}::jsonb[])"
            " AS u(id, type, store_id, subject, version, payload)"
        )

    def complete_idempotency(self, completion: Completion) -> None:
        a = self._arg
        self._part(
            f"UPDATE idempotency_keys SET state = 'done', response_status = {a(completion.status)},"
            f" response_body = {a(completion.body.decode())}::jsonb"
            f" WHERE owner = {a(completion.owner)} AND key = {a(completion.key)}"
        )

    def record_webhook(self, webhook: WebhookRecord, now: datetime) -> None:
        a = self._arg
        detail = webhook.detail.decode() if webhook.detail is not None else None
        self._part(
            "INSERT INTO processed_webhooks (event_id, event_type, pgw_reference, payment_id, outcome, detail,"
            f" received_at) VALUES ({a(webhook.event_id)}, {a(webhook.event_type)}, {a(webhook.pgw_reference)},"
            f" {a(webhook.payment_id)}::text, {a(webhook.outcome)}, {a(detail)}::jsonb, {a(now)})"
        )

    def notify(self) -> None:
        # Relays in other processes LISTEN: delivered at commit, no extra round trip.
        self.parts.append(f"n AS (SELECT pg_notify('{NOTIFY_CHANNEL}', ''))")
        self.expected_updates.setdefault("n", 1)

    def sql(self) -> tuple[Any, ...]:
        counts = [f"(SELECT count(*) FROM {name}) AS {name}" for name in self.expected_updates]
        select = "SELECT " + (", ".join(counts) if counts else "1 AS done")
        return ("WITH " + ",\n".join(self.parts) + "\n" + select, *self.args)


async def resolve_merchant(db: Db, query: str, resource_id: str) -> str | None:
    merchant_id: str | None = await db.fetchval(query, resource_id)
    return merchant_id


async def resolve_reference(db: Db, pgw_reference: str, event_id: str) -> asyncpg.Record | None:
    return await db.fetchrow(RESOLVE_REFERENCE, pgw_reference, event_id)
