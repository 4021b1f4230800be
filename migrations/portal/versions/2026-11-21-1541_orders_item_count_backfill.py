"""orders.item_count, backfill: fill existing orders in keyset batches, one short transaction each.

Re-runnable (only rows still NULL are touched) and safe while the shops write: each batch locks at most
BATCH_SIZE order rows for milliseconds. New orders are written with item_count by the application.
Downgrade keeps the data (nothing to undo; the expand revision's downgrade removes the column).

Revision ID: cdbe87debfaa
Revises: ad0c21390a13
Create Date: 2026-11-21 15:41:30.351919+00:00
"""

from collections.abc import Sequence

import os

import sqlalchemy as sa  # noqa: F401  (template import)
from alembic import context, op

from smartpos_shared.migrations import backfill

revision: str = 'cdbe87debfaa'
down_revision: str | Sequence[str] | None = 'ad0c21390a13'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Never queue behind a long transaction holding a lock the shops need: give up and retry the deploy instead.
LOCK_TIMEOUT = "2s"
STATEMENT_TIMEOUT = "60s"


def _timeouts() -> None:
    op.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
    op.execute(f"SET LOCAL statement_timeout = '{STATEMENT_TIMEOUT}'")


BATCH_SIZE = int(os.environ.get("SMARTPOS_BACKFILL_BATCH", "5000"))
# Key ranges backfilled in parallel, each on its own connection (the per-row cost is index maintenance).
WORKERS = int(os.environ.get("SMARTPOS_BACKFILL_WORKERS", "2"))

# One batch: the next BATCH_SIZE orders still NULL after $1 (and at most $2: this worker's range; keyset on the
# primary key), their units summed from order_lines (primary key (order_id, line_no): an index lookup each).
# SKIP LOCKED: never wait for an order a request is changing; a later run (or the contract's check) sees it.
BATCH_SQL = """
WITH batch AS (
    SELECT id FROM orders
    WHERE id > $1 AND ($2::text IS NULL OR id <= $2) AND item_count IS NULL
    ORDER BY id
    LIMIT $3
    FOR UPDATE SKIP LOCKED
), units AS (
    SELECT l.order_id, sum(l.quantity)::integer AS n
    FROM order_lines l JOIN batch b ON b.id = l.order_id
    GROUP BY l.order_id
)
UPDATE orders o
SET item_count = coalesce(u.n, 0)
FROM batch b LEFT JOIN units u ON u.order_id = b.id
WHERE o.id = b.id
RETURNING o.id
"""


def upgrade() -> None:
    if context.is_offline_mode():
        # Offline SQL (for review and squawk): the statement each batch runs, for the first batch of one range.
        op.execute(
            BATCH_SQL.replace("$1", "''").replace("$2::text", "NULL::text").replace("$2", "NULL").replace("$3", str(BATCH_SIZE))
        )
        return
    with op.get_context().autocommit_block():
        backfill(
            table="orders",
            pending="item_count IS NULL",
            batch_sql=BATCH_SQL,
            batch_size=BATCH_SIZE,
            workers=WORKERS,
            lock_timeout=LOCK_TIMEOUT,
            statement_timeout=STATEMENT_TIMEOUT,
        )


def downgrade() -> None:
    pass  # the values stay; the expand revision's downgrade drops the column
