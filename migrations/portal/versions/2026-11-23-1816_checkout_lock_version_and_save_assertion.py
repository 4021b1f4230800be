"""checkout: orders.lock_version and smartpos_assert_saved()

The checkout saves an aggregate (order, bill, payments) with one statement guarded by the order's lock_version
(portal/checkout/repository.py). ADD COLUMN … NOT NULL DEFAULT 0 is metadata only on PostgreSQL 11+ (no table
rewrite, no long lock). smartpos_assert_saved(ok) raises SQLSTATE 40001 when a guarded save matched nothing, so
the statement writes nothing and the portal redoes the transition under the row lock. Downgrade drops both (the
counter carries no business data).

Revision ID: 84b32291729d
Revises: 2b074706b482
Create Date: 2026-11-23 18:16:02.508302+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '84b32291729d'
down_revision: str | Sequence[str] | None = '2b074706b482'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Never queue behind a long transaction holding a lock the shops need: give up and retry the deploy instead.
LOCK_TIMEOUT = "2s"
STATEMENT_TIMEOUT = "60s"


def _timeouts() -> None:
    op.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
    op.execute(f"SET LOCAL statement_timeout = '{STATEMENT_TIMEOUT}'")


ASSERT_SAVED = """
CREATE OR REPLACE FUNCTION smartpos_assert_saved(ok boolean) RETURNS boolean
LANGUAGE plpgsql AS $$
BEGIN
    IF NOT ok THEN
        RAISE EXCEPTION 'checkout aggregate changed since it was read'
            USING ERRCODE = 'serialization_failure';
    END IF;
    RETURN true;
END
$$"""


def upgrade() -> None:
    _timeouts()
    op.add_column("orders", sa.Column("lock_version", sa.BigInteger(), server_default=sa.text("0"), nullable=False))
    op.execute(ASSERT_SAVED)


def downgrade() -> None:
    _timeouts()
    op.execute("DROP FUNCTION IF EXISTS smartpos_assert_saved(boolean)")
    op.drop_column("orders", "lock_version")
