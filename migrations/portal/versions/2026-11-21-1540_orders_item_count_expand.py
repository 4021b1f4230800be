"""orders.item_count, expand: a nullable column (no default, no rewrite: instant on any size).

Deploy order (upgrade): this revision -> the application that writes item_count -> backfill -> contract.
Downgrade drops the column; the data it held is derived from order_lines, which is untouched.

Revision ID: ad0c21390a13
Revises: 1b054a72d710
Create Date: 2026-11-21 15:40:27.899176+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = 'ad0c21390a13'
down_revision: str | Sequence[str] | None = '1b054a72d710'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Never queue behind a long transaction holding a lock the shops need: give up and retry the deploy instead.
LOCK_TIMEOUT = "2s"
STATEMENT_TIMEOUT = "60s"


def _timeouts() -> None:
    op.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
    op.execute(f"SET LOCAL statement_timeout = '{STATEMENT_TIMEOUT}'")


def upgrade() -> None:
    _timeouts()
    op.add_column("orders", sa.Column("item_count", sa.Integer(), nullable=True))


def downgrade() -> None:
    _timeouts()
    op.drop_column("orders", "item_count")
