"""offline store-and-forward: terminal-generated ids, offline payment facts, merchant offline limits

- `orders.client_order_id` / `payments.client_payment_id`: ids a terminal generates while offline, unique per
  merchant — a database constraint (partial unique indexes), not a check in Python, so the same business id never
  creates a second order or payment whatever raced. `orders.taken_at` / `orders.device_id`,
  `payments.taken_offline` / `payments.device_id` / `payments.offline_auth` record where and when it happened.
- `merchants.offline_max_payment_amount` / `offline_max_outstanding_amount` (per device; NULL: no limit) and
  `offline_max_age_hours` (default 24), enforced at `POST /sync`.

Live-safe: every new column is NULL or has a constant default (metadata only); the indexes are built
CONCURRENTLY outside the migration's transaction (no lock that blocks writes). Re-runnable after a failure part
way (the columns are committed before the builds start): ADD COLUMN IF NOT EXISTS, CREATE INDEX … IF NOT EXISTS,
and an index left INVALID by a failed build is dropped and built again.

Revision ID: 7e3a2c1d9b64
Revises: 6d2f1e0b8a53
Create Date: 2026-11-23 19:15:00.000000+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import context, op

revision: str = '7e3a2c1d9b64'
down_revision: str | Sequence[str] | None = '6d2f1e0b8a53'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

LOCK_TIMEOUT = "2s"
STATEMENT_TIMEOUT = "60s"
INDEXES = (
    (
        "uq_orders_merchant_id_client_order_id",
        "UNIQUE INDEX CONCURRENTLY IF NOT EXISTS {} ON orders (merchant_id, client_order_id)"
        " WHERE client_order_id IS NOT NULL",
    ),
    (
        "uq_payments_merchant_id_client_payment_id",
        "UNIQUE INDEX CONCURRENTLY IF NOT EXISTS {} ON payments (merchant_id, client_payment_id)"
        " WHERE client_payment_id IS NOT NULL",
    ),
    # A terminal's offline card/qr payments still waiting for the gateway (its outstanding limit, at sync).
    (
        "ix_payments_offline_pending",
        "INDEX CONCURRENTLY IF NOT EXISTS {} ON payments (merchant_id, device_id)"
        " WHERE taken_offline AND status = 'pending'",
    ),
)


def _invalid_index(name: str) -> bool:
    """An index a failed CONCURRENTLY build left behind (INVALID): IF NOT EXISTS would keep it, so it goes first."""
    query = "SELECT NOT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid WHERE c.relname = :name"
    return bool(op.get_bind().execute(sa.text(query), {"name": name}).scalar())


def upgrade() -> None:
    op.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
    op.execute(f"SET LOCAL statement_timeout = '{STATEMENT_TIMEOUT}'")
    op.add_column("orders", sa.Column("client_order_id", sa.String(), nullable=True), if_not_exists=True)
    op.add_column("orders", sa.Column("taken_at", sa.DateTime(timezone=True), nullable=True), if_not_exists=True)
    op.add_column("orders", sa.Column("device_id", sa.String(), nullable=True), if_not_exists=True)
    op.add_column("payments", sa.Column("client_payment_id", sa.String(), nullable=True), if_not_exists=True)
    op.add_column("payments", sa.Column("taken_offline", sa.Boolean(), server_default=sa.text("false"), nullable=False), if_not_exists=True)
    op.add_column("payments", sa.Column("device_id", sa.String(), nullable=True), if_not_exists=True)
    op.add_column("payments", sa.Column("offline_auth", sa.String(), nullable=True), if_not_exists=True)
    op.add_column("merchants", sa.Column("offline_max_payment_amount", sa.BigInteger(), nullable=True), if_not_exists=True)
    op.add_column("merchants", sa.Column("offline_max_outstanding_amount", sa.BigInteger(), nullable=True), if_not_exists=True)
    op.add_column("merchants", sa.Column("offline_max_age_hours", sa.Integer(), server_default=sa.text("24"), nullable=False), if_not_exists=True)
    with op.get_context().autocommit_block():
        # A concurrent build holds only SHARE UPDATE EXCLUSIVE (reads and writes go on) but waits for transactions
        # older than it to finish: no lock or statement timeout, or one long transaction would abort the deploy.
        op.execute("SET lock_timeout = '0'")
        op.execute("SET statement_timeout = '0'")
        for name, create in INDEXES:
            if not context.is_offline_mode() and _invalid_index(name):
                op.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {name}")
            op.execute("CREATE " + create.format(name))
        op.execute("RESET lock_timeout")
        op.execute("RESET statement_timeout")


def downgrade() -> None:
    if not context.is_offline_mode():
        held = op.get_bind().execute(
            sa.text(
                "SELECT EXISTS (SELECT 1 FROM orders WHERE client_order_id IS NOT NULL)"
                " OR EXISTS (SELECT 1 FROM payments WHERE client_payment_id IS NOT NULL)"
            )
        ).scalar()
        if held:
            # The ids are what stops a terminal's retried offline sale from being created twice: never drop them.
            raise RuntimeError("orders or payments hold terminal-generated ids; refusing to drop them")
    with op.get_context().autocommit_block():
        op.execute(f"SET lock_timeout = '{LOCK_TIMEOUT}'")
        for name, _ in INDEXES:
            op.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {name}")
        op.execute("RESET lock_timeout")
    op.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
    for table, column in (
        ("merchants", "offline_max_age_hours"),
        ("merchants", "offline_max_outstanding_amount"),
        ("merchants", "offline_max_payment_amount"),
        ("payments", "offline_auth"),
        ("payments", "device_id"),
        ("payments", "taken_offline"),
        ("payments", "client_payment_id"),
        ("orders", "device_id"),
        ("orders", "taken_at"),
        ("orders", "client_order_id"),
    ):
        op.drop_column(table, column)
