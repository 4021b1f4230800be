"""refunds and voids: the refunds table, refunded amounts on payments, bills and orders, captured-after-void

Refunds go back to the payment they refund (split tender: each tender its own). The cap is the database's:
`payments.refunded_amount + refund_pending_amount <= amount` (a CHECK), whatever requests race. Bills and orders
carry the succeeded refunds of their succeeded payments (`refunded_amount`).

Live-safe: ADD COLUMN … NOT NULL DEFAULT 0 is metadata only (PostgreSQL 11+); each CHECK is added NOT VALID
(no scan under the ACCESS EXCLUSIVE lock; new and updated rows are checked from then on) and validated by the
next revision, in its own transaction, under SHARE UPDATE EXCLUSIVE, which lets the shops' reads and writes go
on. Every existing row already satisfies them (all the new columns are 0).

Downgrade refuses while refunds exist (they are money history); otherwise it drops what upgrade added.

Revision ID: 5c1e0d9a7f42
Revises: 84b32291729d
Create Date: 2026-11-23 19:05:00.000000+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from smartpos_shared.migrations import refuse_if_rows

revision: str = '5c1e0d9a7f42'
down_revision: str | Sequence[str] | None = '84b32291729d'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Never queue behind a long transaction holding a lock the shops need: give up and retry the deploy instead.
LOCK_TIMEOUT = "2s"
STATEMENT_TIMEOUT = "600s"

CHECKS = (
    ("orders", "ck_orders_refunded_within_total", "refunded_amount >= 0 AND refunded_amount <= total_amount"),
    ("bills", "ck_bills_refunded_within_paid", "refunded_amount >= 0 AND refunded_amount <= paid_amount"),
    (
        "payments",
        "ck_payments_refunds_within_amount",
        "refunded_amount >= 0 AND refund_pending_amount >= 0 AND refunded_amount + refund_pending_amount <= amount",
    ),
)


def _timeouts() -> None:
    op.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
    op.execute(f"SET LOCAL statement_timeout = '{STATEMENT_TIMEOUT}'")


def upgrade() -> None:
    _timeouts()
    zero = sa.text("0")
    op.add_column("orders", sa.Column("refunded_amount", sa.BigInteger(), server_default=zero, nullable=False))
    op.add_column("bills", sa.Column("refunded_amount", sa.BigInteger(), server_default=zero, nullable=False))
    op.add_column("payments", sa.Column("refunded_amount", sa.BigInteger(), server_default=zero, nullable=False))
    op.add_column(
        "payments", sa.Column("refund_pending_amount", sa.BigInteger(), server_default=zero, nullable=False)
    )
    op.add_column("payments", sa.Column("captured_after_void_at", sa.DateTime(timezone=True), nullable=True))
    for table, name, check in CHECKS:
        op.execute(f"ALTER TABLE {table} ADD CONSTRAINT {name} CHECK ({check}) NOT VALID")
    op.create_table(
        "refunds",
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("merchant_id", sa.String(), nullable=False),
        sa.Column("store_id", sa.String(), nullable=False),
        sa.Column("order_id", sa.String(), nullable=False),
        sa.Column("bill_id", sa.String(), nullable=False),
        sa.Column("payment_id", sa.String(), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("method", sa.String(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("reason", sa.String(), nullable=True),
        sa.Column("pgw_reference", sa.String(), nullable=True),
        sa.Column("failure_reason", sa.String(), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("amount > 0", name=op.f("ck_refunds_amount_positive")),
        sa.CheckConstraint("method IN ('card', 'qr', 'cash')", name=op.f("ck_refunds_method")),
        sa.CheckConstraint("status IN ('pending', 'succeeded', 'failed')", name=op.f("ck_refunds_status")),
        sa.ForeignKeyConstraint(["merchant_id"], ["merchants.id"], name=op.f("fk_refunds_merchant_id_merchants")),
        sa.ForeignKeyConstraint(["payment_id"], ["payments.id"], name=op.f("fk_refunds_payment_id_payments")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_refunds")),
        sa.UniqueConstraint("pgw_reference", name=op.f("uq_refunds_pgw_reference")),
    )
    op.create_index("ix_refunds_bill_id", "refunds", ["bill_id"], unique=False)
    op.create_index("ix_refunds_merchant_id_id", "refunds", ["merchant_id", "id"], unique=False)
    op.create_index(
        "ix_refunds_merchant_id_payment_id_id", "refunds", ["merchant_id", "payment_id", "id"], unique=False
    )


def downgrade() -> None:
    _timeouts()
    refuse_if_rows("refunds")
    op.drop_index("ix_refunds_merchant_id_payment_id_id", table_name="refunds")
    op.drop_index("ix_refunds_merchant_id_id", table_name="refunds")
    op.drop_index("ix_refunds_bill_id", table_name="refunds")
    op.drop_table("refunds")
    for table, name, _ in CHECKS:
        op.execute(f"ALTER TABLE {table} DROP CONSTRAINT {name}")
    op.drop_column("payments", "captured_after_void_at")
    op.drop_column("payments", "refund_pending_amount")
    op.drop_column("payments", "refunded_amount")
    op.drop_column("bills", "refunded_amount")
    op.drop_column("orders", "refunded_amount")
