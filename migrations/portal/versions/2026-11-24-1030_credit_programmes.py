"""credit programmes: periodic allocations with expiry and carry-over, applied by the overnight run

- `credit_programmes` (a store's programme: `allocation_amount` per `period`, `carry_over_max`) and
  `credit_enrolments` (accounts in a programme).
- `credit_entries.programme_id`, `business_date`, `dedupe_key` (NULL for other entries) with a unique index on
  (account_id, dedupe_key): a programme period is applied to an account once, whatever runs twice. The ledger table
  is small and new (store credit landed in the previous revision): plain index build.

Downgrade refuses while programmes exist.

Revision ID: b2d7e5f9c3a8
Revises: a1c6f4e8b297
Create Date: 2026-11-24 10:30:00.000000+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from smartpos_shared.migrations import refuse_if_rows

revision: str = 'b2d7e5f9c3a8'
down_revision: str | Sequence[str] | None = 'a1c6f4e8b297'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("SET LOCAL lock_timeout = '2s'")
    op.execute("SET LOCAL statement_timeout = '60s'")
    op.create_table(
        "credit_programmes",
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("merchant_id", sa.String(), nullable=False),
        sa.Column("store_id", sa.String(), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("allocation_amount", sa.BigInteger(), nullable=False),
        sa.Column("period", sa.String(), nullable=False),
        sa.Column("carry_over_max", sa.BigInteger(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("allocation_amount > 0", name=op.f("ck_credit_programmes_allocation_positive")),
        sa.CheckConstraint("period IN ('daily', 'weekly', 'monthly')", name=op.f("ck_credit_programmes_period")),
        sa.CheckConstraint(
            "carry_over_max IS NULL OR carry_over_max >= 0", name=op.f("ck_credit_programmes_carry_over_not_negative")
        ),
        sa.ForeignKeyConstraint(["merchant_id"], ["merchants.id"], name=op.f("fk_credit_programmes_merchant_id_merchants")),
        sa.ForeignKeyConstraint(["store_id"], ["stores.id"], name=op.f("fk_credit_programmes_store_id_stores")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_credit_programmes")),
    )
    op.create_index("ix_credit_programmes_merchant_id_store_id", "credit_programmes", ["merchant_id", "store_id"])
    op.create_table(
        "credit_enrolments",
        sa.Column("programme_id", sa.String(), nullable=False),
        sa.Column("account_id", sa.String(), nullable=False),
        sa.Column("merchant_id", sa.String(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["account_id"], ["credit_accounts.id"], name=op.f("fk_credit_enrolments_account_id_credit_accounts")),
        sa.ForeignKeyConstraint(["merchant_id"], ["merchants.id"], name=op.f("fk_credit_enrolments_merchant_id_merchants")),
        sa.ForeignKeyConstraint(["programme_id"], ["credit_programmes.id"], name=op.f("fk_credit_enrolments_programme_id_credit_programmes")),
        sa.PrimaryKeyConstraint("programme_id", "account_id", name=op.f("pk_credit_enrolments")),
    )
    op.add_column("credit_entries", sa.Column("programme_id", sa.String(), nullable=True))
    op.add_column("credit_entries", sa.Column("business_date", sa.Date(), nullable=True))
    op.add_column("credit_entries", sa.Column("dedupe_key", sa.String(), nullable=True))
    # credit_entries is new (the previous revision) and small: a plain build, not CONCURRENTLY.
    op.execute(
        "-- squawk-ignore require-concurrent-index-creation\n"
        "CREATE UNIQUE INDEX uq_credit_entries_account_id_dedupe_key ON credit_entries (account_id, dedupe_key)"
        " WHERE dedupe_key IS NOT NULL"
    )


def downgrade() -> None:
    op.execute("SET LOCAL lock_timeout = '2s'")
    op.execute("SET LOCAL statement_timeout = '60s'")
    refuse_if_rows("credit_programmes")
    op.drop_index("uq_credit_entries_account_id_dedupe_key", table_name="credit_entries")
    op.drop_column("credit_entries", "dedupe_key")
    op.drop_column("credit_entries", "business_date")
    op.drop_column("credit_entries", "programme_id")
    op.drop_table("credit_enrolments")
    op.drop_table("credit_programmes")
