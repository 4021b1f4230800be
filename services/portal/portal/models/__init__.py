"""ORM models of the portal service. Every model is imported here so Alembic sees them all.

Every tenant-owned row carries `merchant_id` (the future Citus distribution column) and every query filters by
it. Amounts are integers in the currency's minor unit. `version` increments on every change.
"""

from __future__ import annotations

from datetime import date, datetime, time
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    Time,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from smartpos_shared.db import ServiceBase, service_metadata, utcnow
from smartpos_shared.events import OutboxMixin
from smartpos_shared.states import BillStatus, OrderStatus, PaymentMethod, PaymentStatus, RefundStatus, check_in


class Base(ServiceBase):
    __abstract__ = True
    metadata = service_metadata()


class Merchant(Base):
    __tablename__ = "merchants"
    __table_args__ = (CheckConstraint("currency ~ '^[A-Z]{3}$'", name="currency_iso4217"),)

    id: Mapped[str] = mapped_column(String, primary_key=True)
    name: Mapped[str] = mapped_column(String)
    currency: Mapped[str] = mapped_column(String(3))
    created_at: Mapped[datetime] = mapped_column(default=utcnow, server_default=text("now()"))
    # Offline limits, enforced when a terminal forwards what it took offline (POST /sync). NULL: no limit.
    offline_max_payment_amount: Mapped[int | None] = mapped_column(BigInteger)
    offline_max_outstanding_amount: Mapped[int | None] = mapped_column(BigInteger)  # per device
    offline_max_age_hours: Mapped[int] = mapped_column(Integer, default=24, server_default=text("24"))


class Store(Base):
    __tablename__ = "stores"
    __table_args__ = (Index("ix_stores_merchant_id_id", "merchant_id", "id"),)

    id: Mapped[str] = mapped_column(String, primary_key=True)
    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.id"))
    name: Mapped[str] = mapped_column(String)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, server_default=text("now()"))
    # The store's business day (portal/closeout/business_day.py): it runs from `day_closes_at` local time to the
    # same time the next day, in `timezone` (IANA).
    timezone: Mapped[str] = mapped_column(String, server_default=text("'UTC'"))
    day_closes_at: Mapped[time] = mapped_column(Time, server_default=text("'04:00'"))


class Product(Base):
    __tablename__ = "products"
    __table_args__ = (
        CheckConstraint("unit_price >= 0", name="unit_price_not_negative"),
        Index("ix_products_merchant_id_id", "merchant_id", "id"),
        Index(
            "uq_products_merchant_id_sku", "merchant_id", "sku", unique=True, postgresql_where=text("sku IS NOT NULL")
        ),
    )

    id: Mapped[str] = mapped_column(String, primary_key=True)
    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.id"))
    name: Mapped[str] = mapped_column(String)
    sku: Mapped[str | None] = mapped_column(String)
    unit_price: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    created_at: Mapped[datetime] = mapped_column(default=utcnow, server_default=text("now()"))
    # False once a promoted configuration dropped it from the catalog: kept (orders name it), never sold.
    active: Mapped[bool] = mapped_column(Boolean, default=True, server_default=text("true"))


class Order(Base):
    __tablename__ = "orders"
    __table_args__ = (
        CheckConstraint(check_in("status", OrderStatus), name="status"),
        CheckConstraint("total_amount >= 0", name="total_not_negative"),
        CheckConstraint("refunded_amount >= 0 AND refunded_amount <= total_amount", name="refunded_within_total"),
        Index("ix_orders_merchant_id_id", "merchant_id", "id"),
        Index("ix_orders_merchant_id_store_id_id", "merchant_id", "store_id", "id"),
        Index("ix_orders_merchant_id_status_id", "merchant_id", "status", "id"),
        Index(
            "ix_orders_merchant_id_store_id_completed_at",
            "merchant_id",
            "store_id",
            "completed_at",
            postgresql_where=text("completed_at IS NOT NULL"),
        ),
        # A terminal's own id for an order (offline store-and-forward): one order per id per merchant, whatever races.
        Index(
            "uq_orders_merchant_id_client_order_id",
            "merchant_id",
            "client_order_id",
            unique=True,
            postgresql_where=text("client_order_id IS NOT NULL"),
        ),
    )

    id: Mapped[str] = mapped_column(String, primary_key=True)
    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.id"))
    store_id: Mapped[str] = mapped_column(ForeignKey("stores.id"))
    status: Mapped[str] = mapped_column(String)
    total_amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    version: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    completed_at: Mapped[datetime | None] = mapped_column()
    canceled_at: Mapped[datetime | None] = mapped_column()
    # Units on the order (sum of line quantities), denormalised for lists, receipts and dashboards.
    item_count: Mapped[int] = mapped_column(Integer)
    # Counts every change of the order's aggregate (order, bill, payments): the checkout's optimistic saves are
    # guarded by it (portal/checkout/repository.py). Internal; not in the API.
    lock_version: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))
    # Succeeded refunds of the order's payments (its revenue is total_amount - refunded_amount once completed).
    refunded_amount: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))
    client_order_id: Mapped[str | None] = mapped_column(String)
    taken_at: Mapped[datetime | None] = mapped_column()  # when a terminal took it offline
    device_id: Mapped[str | None] = mapped_column(String)  # the terminal that forwarded it


class OrderLine(Base):
    """A line item, priced from the catalog when the order was created (a snapshot: later price changes
    never alter an order)."""

    __tablename__ = "order_lines"
    __table_args__ = (
        CheckConstraint("quantity > 0", name="quantity_positive"),
        CheckConstraint("line_total = unit_price * quantity", name="line_total_consistent"),
    )

    order_id: Mapped[str] = mapped_column(ForeignKey("orders.id"), primary_key=True)
    line_no: Mapped[int] = mapped_column(Integer, primary_key=True)
    merchant_id: Mapped[str] = mapped_column(String)
    product_id: Mapped[str] = mapped_column(ForeignKey("products.id"), index=True)
    name: Mapped[str] = mapped_column(String)
    quantity: Mapped[int] = mapped_column(Integer)
    unit_price: Mapped[int] = mapped_column(BigInteger)
    line_total: Mapped[int] = mapped_column(BigInteger)


class Bill(Base):
    __tablename__ = "bills"
    __table_args__ = (
        CheckConstraint(check_in("status", BillStatus), name="status"),
        CheckConstraint("paid_amount >= 0 AND paid_amount <= total_amount", name="paid_within_total"),
        CheckConstraint("refunded_amount >= 0 AND refunded_amount <= paid_amount", name="refunded_within_paid"),
        CheckConstraint(f"(status = '{BillStatus.paid}') = (paid_at IS NOT NULL)", name="paid_at_iff_paid"),
        # One live bill per order; the database enforces it even if two requests race.
        Index(
            "uq_bills_live_order_id", "order_id", unique=True, postgresql_where=text(f"status <> '{BillStatus.void}'")
        ),
        Index("ix_bills_merchant_id_id", "merchant_id", "id"),
    )

    id: Mapped[str] = mapped_column(String, primary_key=True)
    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.id"))
    store_id: Mapped[str] = mapped_column(String)
    order_id: Mapped[str] = mapped_column(ForeignKey("orders.id"))
    status: Mapped[str] = mapped_column(String)
    total_amount: Mapped[int] = mapped_column(BigInteger)
    paid_amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    paid_at: Mapped[datetime | None] = mapped_column()
    version: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Succeeded refunds of the bill's succeeded payments.
    refunded_amount: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))


class Payment(Base):
    __tablename__ = "payments"
    __table_args__ = (
        CheckConstraint(check_in("status", PaymentStatus), name="status"),
        CheckConstraint(check_in("method", PaymentMethod), name="method"),
        CheckConstraint("amount > 0", name="amount_positive"),
        # The refund cap, kept by the database whatever races: succeeded plus pending refunds never exceed the
        # payment (failed refunds give their amount back).
        CheckConstraint(
            "refunded_amount >= 0 AND refund_pending_amount >= 0 AND refunded_amount + refund_pending_amount <= amount",
            name="refunds_within_amount",
        ),
        Index("ix_payments_bill_id_status", "bill_id", "status"),
        Index(
            "uq_payments_merchant_id_client_payment_id",
            "merchant_id",
            "client_payment_id",
            unique=True,
            postgresql_where=text("client_payment_id IS NOT NULL"),
        ),
        Index(
            "ix_payments_offline_pending",
            "merchant_id",
            "device_id",
            postgresql_where=text(f"taken_offline AND status = '{PaymentStatus.pending}'"),
        ),
        Index("ix_payments_merchant_id_id", "merchant_id", "id"),
        # Close of business: a store's payments by the time they succeeded, and those still pending.
        Index(
            "ix_payments_merchant_id_store_id_succeeded_at",
            "merchant_id",
            "store_id",
            "succeeded_at",
            postgresql_where=text("succeeded_at IS NOT NULL"),
        ),
        Index(
            "ix_payments_merchant_id_store_id_pending",
            "merchant_id",
            "store_id",
            "created_at",
            postgresql_where=text(f"status = '{PaymentStatus.pending}'"),
        ),
    )

    id: Mapped[str] = mapped_column(String, primary_key=True)
    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.id"))
    store_id: Mapped[str] = mapped_column(String)
    bill_id: Mapped[str] = mapped_column(ForeignKey("bills.id"))
    order_id: Mapped[str] = mapped_column(String)
    amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    method: Mapped[str] = mapped_column(String)
    status: Mapped[str] = mapped_column(String)
    pgw_reference: Mapped[str | None] = mapped_column(String, unique=True)
    failure_reason: Mapped[str | None] = mapped_column(String)
    version: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    refunded_amount: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))
    refund_pending_amount: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))
    # Set when the gateway captured the payment after we voided it: it never pays the bill, it is refunded
    # automatically and listed for review.
    captured_after_void_at: Mapped[datetime | None] = mapped_column()
    client_payment_id: Mapped[str | None] = mapped_column(String)
    taken_offline: Mapped[bool] = mapped_column(default=False, server_default=text("false"))
    device_id: Mapped[str | None] = mapped_column(String)
    offline_auth: Mapped[str | None] = mapped_column(String)
    # When it succeeded: the business day whose Z report counts it (internal; not in the API).
    succeeded_at: Mapped[datetime | None] = mapped_column()


class Refund(Base):
    """Money given back on one payment (so split-tender refunds go back to their own tenders). `cash` succeeds at
    once; `card`/`qr` are pending until the gateway's refund webhook."""

    __tablename__ = "refunds"
    __table_args__ = (
        CheckConstraint(check_in("status", RefundStatus), name="status"),
        CheckConstraint(check_in("method", PaymentMethod), name="method"),
        CheckConstraint("amount > 0", name="amount_positive"),
        Index("ix_refunds_merchant_id_payment_id_id", "merchant_id", "payment_id", "id"),
        Index("ix_refunds_merchant_id_id", "merchant_id", "id"),
        Index("ix_refunds_bill_id", "bill_id"),
        # Close of business: a store's refunds by the time they succeeded (a settled refund never changes again).
        Index(
            "ix_refunds_merchant_id_store_id_settled",
            "merchant_id",
            "store_id",
            "updated_at",
            postgresql_where=text(f"status = '{RefundStatus.succeeded}'"),
        ),
    )

    id: Mapped[str] = mapped_column(String, primary_key=True)
    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.id"))
    store_id: Mapped[str] = mapped_column(String)
    order_id: Mapped[str] = mapped_column(String)
    bill_id: Mapped[str] = mapped_column(String)
    payment_id: Mapped[str] = mapped_column(ForeignKey("payments.id"))
    amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    method: Mapped[str] = mapped_column(String)
    status: Mapped[str] = mapped_column(String)
    reason: Mapped[str | None] = mapped_column(String)
    pgw_reference: Mapped[str | None] = mapped_column(String, unique=True)
    failure_reason: Mapped[str | None] = mapped_column(String)
    version: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class Shift(Base):
    """A cash drawer's shift at a store (one drawer per store: one open shift at a time, a database rule).
    The figures are computed when it closes, from the store's cash payments and refunds while it was open."""

    __tablename__ = "shifts"
    __table_args__ = (
        CheckConstraint("status IN ('open', 'closed')", name="status"),
        CheckConstraint("opening_float >= 0", name="opening_float_not_negative"),
        CheckConstraint(
            "(status = 'closed') = (closed_at IS NOT NULL AND counted_cash IS NOT NULL AND expected_cash IS NOT NULL"
            " AND difference IS NOT NULL)",
            name="closed_iff_counted",
        ),
        CheckConstraint("counted_cash IS NULL OR counted_cash >= 0", name="counted_cash_not_negative"),
        CheckConstraint(
            "expected_cash IS NULL OR expected_cash = opening_float + cash_sales - cash_refunds + paid_in - paid_out",
            name="expected_cash_consistent",
        ),
        CheckConstraint(
            "difference IS NULL OR difference = counted_cash - expected_cash", name="difference_consistent"
        ),
        Index("uq_shifts_open_store_id", "store_id", unique=True, postgresql_where=text("status = 'open'")),
        Index("ix_shifts_merchant_id_store_id_id", "merchant_id", "store_id", "id"),
        Index(
            "ix_shifts_merchant_id_store_id_closed_at",
            "merchant_id",
            "store_id",
            "closed_at",
            postgresql_where=text("status = 'closed'"),
        ),
    )

    id: Mapped[str] = mapped_column(String, primary_key=True)
    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.id"))
    store_id: Mapped[str] = mapped_column(ForeignKey("stores.id"))
    status: Mapped[str] = mapped_column(String)
    currency: Mapped[str] = mapped_column(String(3))
    opening_float: Mapped[int] = mapped_column(BigInteger)
    opened_by: Mapped[str] = mapped_column(String)  # the token subject (device or API client)
    opened_at: Mapped[datetime] = mapped_column()
    closed_at: Mapped[datetime | None] = mapped_column()
    paid_in: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))
    paid_out: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))
    cash_sales: Mapped[int | None] = mapped_column(BigInteger)
    cash_refunds: Mapped[int | None] = mapped_column(BigInteger)
    expected_cash: Mapped[int | None] = mapped_column(BigInteger)
    counted_cash: Mapped[int | None] = mapped_column(BigInteger)
    difference: Mapped[int | None] = mapped_column(BigInteger)
    version: Mapped[int] = mapped_column(Integer)


class CashMovement(Base):
    __tablename__ = "cash_movements"
    __table_args__ = (
        CheckConstraint("kind IN ('paid_in', 'paid_out')", name="kind"),
        CheckConstraint("amount > 0", name="amount_positive"),
        Index("ix_cash_movements_shift_id", "shift_id"),
    )

    id: Mapped[str] = mapped_column(String, primary_key=True)
    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.id"))
    shift_id: Mapped[str] = mapped_column(ForeignKey("shifts.id"))
    kind: Mapped[str] = mapped_column(String)
    amount: Mapped[int] = mapped_column(BigInteger)
    note: Mapped[str | None] = mapped_column(String)
    created_at: Mapped[datetime] = mapped_column()


class ZReport(Base):
    """A store's sealed business day: numbered per store with no gap, hash-chained, never changed (a trigger
    refuses UPDATE, DELETE and TRUNCATE; see the close_of_business migration)."""

    __tablename__ = "z_reports"
    __table_args__ = (
        UniqueConstraint("store_id", "number"),
        UniqueConstraint("store_id", "business_date"),
        CheckConstraint("number >= 1", name="number_positive"),
        CheckConstraint("net_sales = gross_sales - refunds", name="net_consistent"),
        CheckConstraint("window_end > window_start", name="window_not_empty"),
        CheckConstraint("hash ~ '^[0-9a-f]{64}$' AND previous_hash ~ '^[0-9a-f]{64}$'", name="hashes_hex"),
        Index("ix_z_reports_merchant_id_store_id_number", "merchant_id", "store_id", "number"),
    )

    id: Mapped[str] = mapped_column(String, primary_key=True)
    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.id"))
    store_id: Mapped[str] = mapped_column(ForeignKey("stores.id"))
    number: Mapped[int] = mapped_column(BigInteger)
    business_date: Mapped[date] = mapped_column(Date)
    timezone: Mapped[str] = mapped_column(String)
    window_start: Mapped[datetime] = mapped_column()
    window_end: Mapped[datetime] = mapped_column()
    currency: Mapped[str] = mapped_column(String(3))
    orders: Mapped[int] = mapped_column(BigInteger)
    gross_sales: Mapped[int] = mapped_column(BigInteger)
    refunds: Mapped[int] = mapped_column(BigInteger)
    net_sales: Mapped[int] = mapped_column(BigInteger)
    by_method: Mapped[dict[str, Any]] = mapped_column(JSONB)
    shifts: Mapped[list[Any]] = mapped_column(JSONB)
    carried_over: Mapped[dict[str, Any]] = mapped_column(JSONB)
    previous_hash: Mapped[str] = mapped_column(String)
    hash: Mapped[str] = mapped_column(String)
    created_at: Mapped[datetime] = mapped_column()


class Reconciliation(Base):
    """A sealed business day's card and qr money matched against the gateway's settlement report (by the
    overnight run, once per store and date; the GET computes it live for a day not reconciled yet)."""

    __tablename__ = "reconciliations"
    __table_args__ = (
        CheckConstraint("status IN ('balanced', 'differences')", name="status"),
        Index("ix_reconciliations_merchant_id_store_id_business_date", "merchant_id", "store_id", "business_date"),
    )

    store_id: Mapped[str] = mapped_column(ForeignKey("stores.id"), primary_key=True)
    business_date: Mapped[date] = mapped_column(Date, primary_key=True)
    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.id"))
    status: Mapped[str] = mapped_column(String)
    result: Mapped[dict[str, Any]] = mapped_column(JSONB)
    created_at: Mapped[datetime] = mapped_column()


class CreditAccount(Base):
    """Store credit of one customer at a merchant. `balance` never goes below zero (a CHECK); it changes only
    together with a ledger entry (portal/credit/ledger.py), in the same statement."""

    __tablename__ = "credit_accounts"
    __table_args__ = (
        CheckConstraint("balance >= 0", name="balance_not_negative"),
        CheckConstraint("currency ~ '^[A-Z]{3}$'", name="currency_iso4217"),
        Index("ix_credit_accounts_merchant_id_id", "merchant_id", "id"),
        Index(
            "uq_credit_accounts_merchant_id_customer_ref",
            "merchant_id",
            "customer_ref",
            unique=True,
            postgresql_where=text("customer_ref IS NOT NULL"),
        ),
    )

    id: Mapped[str] = mapped_column(String, primary_key=True)
    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.id"))
    customer_ref: Mapped[str | None] = mapped_column(String)
    currency: Mapped[str] = mapped_column(String(3))
    balance: Mapped[int] = mapped_column(BigInteger)
    version: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column()
    updated_at: Mapped[datetime] = mapped_column()


CREDIT_ENTRY_KINDS = ("load", "redeem", "refund", "expire", "allocate", "transfer", "adjust")


class CreditEntry(Base):
    """The append-only ledger of a credit account (a trigger refuses UPDATE, DELETE and TRUNCATE). `amount` is
    signed (credits positive, debits negative); `balance_after` is the account's balance once it applied."""

    __tablename__ = "credit_entries"
    __table_args__ = (
        CheckConstraint(f"kind IN ({', '.join(repr(k) for k in CREDIT_ENTRY_KINDS)})", name="kind"),
        CheckConstraint("amount <> 0", name="amount_not_zero"),
        CheckConstraint("balance_after >= 0", name="balance_after_not_negative"),
        CheckConstraint(
            "(kind IN ('redeem', 'expire') AND amount < 0) OR (kind IN ('load', 'refund', 'allocate') AND amount > 0)"
            " OR kind IN ('transfer', 'adjust')",
            name="amount_sign_by_kind",
        ),
        Index("ix_credit_entries_merchant_id_account_id_id", "merchant_id", "account_id", "id"),
        Index("ix_credit_entries_payment_id", "payment_id", postgresql_where=text("payment_id IS NOT NULL")),
        Index(
            "uq_credit_entries_account_id_dedupe_key",
            "account_id",
            "dedupe_key",
            unique=True,
            postgresql_where=text("dedupe_key IS NOT NULL"),
        ),
    )

    id: Mapped[str] = mapped_column(String, primary_key=True)
    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.id"))
    account_id: Mapped[str] = mapped_column(ForeignKey("credit_accounts.id"))
    kind: Mapped[str] = mapped_column(String)
    amount: Mapped[int] = mapped_column(BigInteger)
    balance_after: Mapped[int] = mapped_column(BigInteger)
    payment_id: Mapped[str | None] = mapped_column(String)  # redeem: the payment; refund: the refunded payment
    refund_id: Mapped[str | None] = mapped_column(String)
    note: Mapped[str | None] = mapped_column(String)
    created_at: Mapped[datetime] = mapped_column()
    # Programme entries (allocate, expire): which programme, for the period starting on which business date, and
    # the key that makes each (programme, period, kind) apply once per account.
    programme_id: Mapped[str | None] = mapped_column(String)
    business_date: Mapped[date | None] = mapped_column(Date)
    dedupe_key: Mapped[str | None] = mapped_column(String)


class CreditProgramme(Base):
    """A store's periodic credit for enrolled accounts, applied by the overnight run (portal/credit/programmes.py)."""

    __tablename__ = "credit_programmes"
    __table_args__ = (
        CheckConstraint("allocation_amount > 0", name="allocation_positive"),
        CheckConstraint("period IN ('daily', 'weekly', 'monthly')", name="period"),
        CheckConstraint("carry_over_max IS NULL OR carry_over_max >= 0", name="carry_over_not_negative"),
        Index("ix_credit_programmes_merchant_id_store_id", "merchant_id", "store_id"),
    )

    id: Mapped[str] = mapped_column(String, primary_key=True)
    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.id"))
    store_id: Mapped[str] = mapped_column(ForeignKey("stores.id"))
    name: Mapped[str] = mapped_column(String)
    allocation_amount: Mapped[int] = mapped_column(BigInteger)
    period: Mapped[str] = mapped_column(String)
    carry_over_max: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column()


class CreditEnrolment(Base):
    __tablename__ = "credit_enrolments"

    programme_id: Mapped[str] = mapped_column(ForeignKey("credit_programmes.id"), primary_key=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("credit_accounts.id"), primary_key=True)
    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.id"))
    created_at: Mapped[datetime] = mapped_column()


class TestClock(Base):
    """The sandbox's test clock of a merchant: its business time while the clock exists (portal/sandbox/)."""

    __test__ = False  # not a pytest test class, whatever its name
    __tablename__ = "test_clocks"
    __table_args__ = (
        CheckConstraint("status IN ('ready', 'advancing')", name="status"),
        UniqueConstraint("merchant_id"),
    )

    id: Mapped[str] = mapped_column(String, primary_key=True)
    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.id"))
    frozen_time: Mapped[datetime] = mapped_column()
    status: Mapped[str] = mapped_column(String)
    # The certification run (`crt_…`) whose request last advanced the clock: the overnight run's events carry it.
    certification_run: Mapped[str | None] = mapped_column(String)
    version: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column()
    updated_at: Mapped[datetime] = mapped_column()


class ProcessedWebhook(Base):
    """Gateway events already handled: written in the same transaction as the change they caused."""

    __tablename__ = "processed_webhooks"

    event_id: Mapped[str] = mapped_column(String, primary_key=True)
    event_type: Mapped[str] = mapped_column(String)
    pgw_reference: Mapped[str | None] = mapped_column(String)
    payment_id: Mapped[str | None] = mapped_column(String)
    outcome: Mapped[str] = mapped_column(String)
    detail: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    received_at: Mapped[datetime] = mapped_column(default=utcnow, server_default=text("now()"))


class IdempotencyKey(Base):
    """Stripe-style idempotency: the first response for (owner, key) is replayed for the same request."""

    __tablename__ = "idempotency_keys"
    __table_args__ = (
        CheckConstraint("state IN ('in_flight', 'done')", name="state"),
        Index("ix_idempotency_keys_expires_at", "expires_at"),
    )

    owner: Mapped[str] = mapped_column(String, primary_key=True)  # "<merchant id or admin>/<token subject>"
    key: Mapped[str] = mapped_column(String, primary_key=True)
    request_hash: Mapped[str] = mapped_column(String)
    state: Mapped[str] = mapped_column(String)
    response_status: Mapped[int | None] = mapped_column(Integer)
    response_body: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, server_default=text("now()"))
    expires_at: Mapped[datetime] = mapped_column()


class OutboxEvent(OutboxMixin, Base):
    __table_args__ = (OutboxMixin.unpublished_index(),)


class MerchantConfig(Base):
    """The merchant's configuration beyond its columns (portal/config/): payment methods enabled, tip options,
    receipt text, tax rates; and the configuration's version. No row: the defaults."""

    __tablename__ = "merchant_configs"
    __table_args__ = (CheckConstraint("version >= 1", name="version"),)

    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.id"), primary_key=True)
    version: Mapped[int] = mapped_column(Integer)
    settings: Mapped[dict[str, Any]] = mapped_column(JSONB)
    updated_at: Mapped[datetime] = mapped_column()


class ChangeRequest(Base):
    """A proposed configuration for a merchant (`chg_`), reviewed and applied whole, or not at all."""

    __tablename__ = "change_requests"
    __table_args__ = (
        CheckConstraint("status IN ('pending_approval', 'approved', 'applied', 'failed', 'reverted')", name="status"),
        CheckConstraint("approvals_required >= 1", name="approvals_required"),
        CheckConstraint(
            "(status IN ('applied', 'reverted')) = (previous IS NOT NULL AND applied_at IS NOT NULL)",
            name="applied_keeps_previous",
        ),
        Index("ix_change_requests_merchant_id_id", "merchant_id", "id"),
        Index("ix_change_requests_due", "apply_at", postgresql_where=text("status = 'approved'")),
    )

    id: Mapped[str] = mapped_column(String, primary_key=True)
    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.id"))
    author_id: Mapped[str] = mapped_column(String)
    status: Mapped[str] = mapped_column(String)
    bundle: Mapped[dict[str, Any]] = mapped_column(JSONB)
    checksum: Mapped[str] = mapped_column(String)
    base: Mapped[dict[str, Any]] = mapped_column(JSONB)
    base_checksum: Mapped[str] = mapped_column(String)
    diff: Mapped[list[Any]] = mapped_column(JSONB)
    approvals_required: Mapped[int] = mapped_column(Integer)
    apply_at: Mapped[datetime | None] = mapped_column()
    previous: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    failure: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    created_at: Mapped[datetime] = mapped_column()
    applied_at: Mapped[datetime | None] = mapped_column()
    reverted_at: Mapped[datetime | None] = mapped_column()
    version: Mapped[int] = mapped_column(Integer)


class ChangeRequestApproval(Base):
    __tablename__ = "change_request_approvals"
    __table_args__ = (CheckConstraint("principal_id <> author_id", name="not_the_author"),)

    change_request_id: Mapped[str] = mapped_column(ForeignKey("change_requests.id"), primary_key=True)
    merchant_id: Mapped[str] = mapped_column(String)  # the change request's: every query is scoped by it
    principal_id: Mapped[str] = mapped_column(String, primary_key=True)
    author_id: Mapped[str] = mapped_column(String)
    approved_at: Mapped[datetime] = mapped_column()


__all__ = [
    "Base",
    "Bill",
    "CashMovement",
    "ChangeRequest",
    "ChangeRequestApproval",
    "CreditAccount",
    "CreditEnrolment",
    "CreditEntry",
    "CreditProgramme",
    "IdempotencyKey",
    "Merchant",
    "MerchantConfig",
    "Order",
    "OrderLine",
    "OutboxEvent",
    "Payment",
    "ProcessedWebhook",
    "Product",
    "Reconciliation",
    "Shift",
    "Store",
    "ZReport",
]
