"""refunds: validate the refund CHECKs added NOT VALID by the previous revision

In its own transaction (transaction_per_migration), so the scan holds only SHARE UPDATE EXCLUSIVE: reads and
writes go on while it runs. Downgrade has nothing to undo (the constraints stay, validated or not; the previous
revision's downgrade drops them).

Revision ID: 6d2f1e0b8a53
Revises: 5c1e0d9a7f42
Create Date: 2026-11-23 19:06:00.000000+00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = '6d2f1e0b8a53'
down_revision: str | Sequence[str] | None = '5c1e0d9a7f42'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

LOCK_TIMEOUT = "2s"
STATEMENT_TIMEOUT = "1800s"  # a full scan of payments, bills and orders
CONSTRAINTS = (
    ("orders", "ck_orders_refunded_within_total"),
    ("bills", "ck_bills_refunded_within_paid"),
    ("payments", "ck_payments_refunds_within_amount"),
)


def upgrade() -> None:
    op.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
    op.execute(f"SET LOCAL statement_timeout = '{STATEMENT_TIMEOUT}'")
    for table, name in CONSTRAINTS:
        op.execute(f"ALTER TABLE {table} VALIDATE CONSTRAINT {name}")


def downgrade() -> None:
    pass
