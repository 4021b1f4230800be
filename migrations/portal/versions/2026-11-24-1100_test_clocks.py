"""test clocks: a merchant's business time in the sandbox

- `test_clocks` (`clk_`): one per merchant at most (unique `merchant_id`), `frozen_time` (the merchant's business
  time while the clock exists), `status` (`ready` | `advancing`: the overnight run has not caught up with the
  last advance yet). Only sandbox portals (`SMARTPOS_ENV` other than production) serve `/test-clocks`; in
  production the table stays empty.

Downgrade refuses while clocks exist (merchants in the sandbox would jump back to real time).

Revision ID: c3e8f6a0d4b9
Revises: b2d7e5f9c3a8
Create Date: 2026-11-24 11:00:00.000000+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from smartpos_shared.migrations import refuse_if_rows

revision: str = 'c3e8f6a0d4b9'
down_revision: str | Sequence[str] | None = 'b2d7e5f9c3a8'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("SET LOCAL lock_timeout = '2s'")
    op.execute("SET LOCAL statement_timeout = '60s'")
    op.create_table(
        "test_clocks",
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("merchant_id", sa.String(), nullable=False),
        sa.Column("frozen_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("status IN ('ready', 'advancing')", name=op.f("ck_test_clocks_status")),
        sa.ForeignKeyConstraint(["merchant_id"], ["merchants.id"], name=op.f("fk_test_clocks_merchant_id_merchants")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_test_clocks")),
        sa.UniqueConstraint("merchant_id", name=op.f("uq_test_clocks_merchant_id")),
    )


def downgrade() -> None:
    op.execute("SET LOCAL lock_timeout = '2s'")
    op.execute("SET LOCAL statement_timeout = '60s'")
    refuse_if_rows("test_clocks")
    op.drop_table("test_clocks")
