"""store credit: credit accounts, their append-only ledger, and payment method `credit`

- `credit_accounts` (balance >= 0, a CHECK) and `credit_entries` (typed, signed, `balance_after`; a trigger
  refuses UPDATE, DELETE and TRUNCATE: the ledger is history).
- `payments.method` and `refunds.method` accept `credit`: each CHECK is replaced by a wider one added NOT VALID
  (no scan under the ACCESS EXCLUSIVE lock) and validated after this revision's transaction, in an autocommit
  block, under SHARE UPDATE EXCLUSIVE (the shops' reads and writes go on). Every existing row satisfies it.

Downgrade refuses while credit accounts exist or any payment used `credit`.

Revision ID: a1c6f4e8b297
Revises: 9b5e3a7d2f86
Create Date: 2026-11-24 10:00:00.000000+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import context, op

from smartpos_shared.migrations import refuse_if_rows

revision: str = 'a1c6f4e8b297'
down_revision: str | Sequence[str] | None = '9b5e3a7d2f86'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

METHODS_BEFORE = "method IN ('card', 'qr', 'cash')"
METHODS_AFTER = "method IN ('card', 'qr', 'cash', 'credit')"
KINDS = "kind IN ('load', 'redeem', 'refund', 'expire', 'allocate', 'transfer', 'adjust')"
SIGN = (
    "(kind IN ('redeem', 'expire') AND amount < 0) OR (kind IN ('load', 'refund', 'allocate') AND amount > 0)"
    " OR kind IN ('transfer', 'adjust')"
)
APPEND_ONLY = """
CREATE OR REPLACE FUNCTION credit_entries_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'credit_entries are append-only: % is refused', TG_OP USING ERRCODE = 'insufficient_privilege';
END
$$
"""


def _replace_method_checks(check: str) -> None:
    for table in ("payments", "refunds"):
        # Replaced at once by the wider (or, going down, the original) check below, in the same transaction.
        op.execute(f"-- squawk-ignore ban-drop-constraint\nALTER TABLE {table} DROP CONSTRAINT ck_{table}_method")
        op.execute(f"ALTER TABLE {table} ADD CONSTRAINT ck_{table}_method CHECK ({check}) NOT VALID")


def upgrade() -> None:
    op.execute("SET LOCAL lock_timeout = '2s'")
    op.execute("SET LOCAL statement_timeout = '60s'")
    op.create_table(
        "credit_accounts",
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("merchant_id", sa.String(), nullable=False),
        sa.Column("customer_ref", sa.String(), nullable=True),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("balance", sa.BigInteger(), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("balance >= 0", name=op.f("ck_credit_accounts_balance_not_negative")),
        sa.CheckConstraint("currency ~ '^[A-Z]{3}$'", name=op.f("ck_credit_accounts_currency_iso4217")),
        sa.ForeignKeyConstraint(["merchant_id"], ["merchants.id"], name=op.f("fk_credit_accounts_merchant_id_merchants")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_credit_accounts")),
    )
    op.create_index("ix_credit_accounts_merchant_id_id", "credit_accounts", ["merchant_id", "id"])
    op.create_index(
        "uq_credit_accounts_merchant_id_customer_ref",
        "credit_accounts",
        ["merchant_id", "customer_ref"],
        unique=True,
        postgresql_where=sa.text("customer_ref IS NOT NULL"),
    )
    op.create_table(
        "credit_entries",
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("merchant_id", sa.String(), nullable=False),
        sa.Column("account_id", sa.String(), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("balance_after", sa.BigInteger(), nullable=False),
        sa.Column("payment_id", sa.String(), nullable=True),
        sa.Column("refund_id", sa.String(), nullable=True),
        sa.Column("note", sa.String(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(KINDS, name=op.f("ck_credit_entries_kind")),
        sa.CheckConstraint("amount <> 0", name=op.f("ck_credit_entries_amount_not_zero")),
        sa.CheckConstraint("balance_after >= 0", name=op.f("ck_credit_entries_balance_after_not_negative")),
        sa.CheckConstraint(SIGN, name=op.f("ck_credit_entries_amount_sign_by_kind")),
        sa.ForeignKeyConstraint(["account_id"], ["credit_accounts.id"], name=op.f("fk_credit_entries_account_id_credit_accounts")),
        sa.ForeignKeyConstraint(["merchant_id"], ["merchants.id"], name=op.f("fk_credit_entries_merchant_id_merchants")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_credit_entries")),
    )
    op.create_index("ix_credit_entries_merchant_id_account_id_id", "credit_entries", ["merchant_id", "account_id", "id"])
    op.create_index(
        "ix_credit_entries_payment_id", "credit_entries", ["payment_id"], postgresql_where=sa.text("payment_id IS NOT NULL")
    )
    op.execute(APPEND_ONLY)
    op.execute(
        "CREATE TRIGGER credit_entries_append_only_rows BEFORE UPDATE OR DELETE ON credit_entries"
        " FOR EACH ROW EXECUTE FUNCTION credit_entries_append_only()"
    )
    op.execute(
        "CREATE TRIGGER credit_entries_append_only_table BEFORE TRUNCATE ON credit_entries"
        " FOR EACH STATEMENT EXECUTE FUNCTION credit_entries_append_only()"
    )
    _replace_method_checks(METHODS_AFTER)
    with op.get_context().autocommit_block():
        op.execute("SET statement_timeout = '0'")
        for table in ("payments", "refunds"):
            op.execute(f"ALTER TABLE {table} VALIDATE CONSTRAINT ck_{table}_method")
        op.execute("RESET statement_timeout")


def downgrade() -> None:
    op.execute("SET LOCAL lock_timeout = '2s'")
    op.execute("SET LOCAL statement_timeout = '60s'")
    refuse_if_rows("credit_accounts")
    if not context.is_offline_mode():
        used = op.get_bind().execute(
            sa.text("SELECT EXISTS (SELECT 1 FROM payments WHERE method = 'credit')")
        ).scalar()
        if used:
            raise RuntimeError("refusing to downgrade: payments were made with store credit")
    _replace_method_checks(METHODS_BEFORE)
    op.drop_table("credit_entries")
    op.execute("DROP FUNCTION IF EXISTS credit_entries_append_only()")
    op.drop_table("credit_accounts")
