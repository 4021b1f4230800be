"""configuration promotion: a merchant's configuration as a document, changed through reviewed change requests

- `products.active` (default true): a product the configuration dropped from the catalog is inactive — kept (orders
  name it), never sold again until a configuration brings it back.
- `merchant_configs`: per merchant, the settings the columns do not hold yet (payment methods enabled, tip options,
  receipt text, tax rates) and the configuration's `version`; no row means the defaults.
- `change_requests` (`chg_`): a proposed configuration (`bundle`), the live configuration it was diffed against
  (`base`, `base_checksum`), the diff, when to apply it (`apply_at`), the configuration it replaced (`previous`) and
  why it failed (`failure`). `change_request_approvals`: one per approver (primary key), never the author (CHECK).

Downgrade refuses while change requests exist (they are the record of what changed production) or a product is
inactive (it would be sold again).

Revision ID: e9c4b2a7d1f3
Revises: d7a2c9e4f1b6
Create Date: 2026-11-24 14:00:00.000000+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from smartpos_shared.migrations import refuse_if_rows

revision: str = 'e9c4b2a7d1f3'
down_revision: str | Sequence[str] | None = 'd7a2c9e4f1b6'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("SET LOCAL lock_timeout = '2s'")
    op.execute("SET LOCAL statement_timeout = '60s'")
    # A constant default: no table rewrite (PostgreSQL 11+).
    op.add_column("products", sa.Column("active", sa.Boolean(), server_default=sa.text("true"), nullable=False))
    op.create_table(
        "merchant_configs",
        sa.Column("merchant_id", sa.String(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("settings", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("version >= 1", name=op.f("ck_merchant_configs_version")),
        sa.ForeignKeyConstraint(
            ["merchant_id"], ["merchants.id"], name=op.f("fk_merchant_configs_merchant_id_merchants")
        ),
        sa.PrimaryKeyConstraint("merchant_id", name=op.f("pk_merchant_configs")),
    )
    op.create_table(
        "change_requests",
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("merchant_id", sa.String(), nullable=False),
        sa.Column("author_id", sa.String(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("bundle", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("checksum", sa.String(), nullable=False),
        sa.Column("base", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("base_checksum", sa.String(), nullable=False),
        sa.Column("diff", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("approvals_required", sa.Integer(), nullable=False),
        sa.Column("apply_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("previous", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("failure", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("applied_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("reverted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.CheckConstraint(
            "status IN ('pending_approval', 'approved', 'applied', 'failed', 'reverted')",
            name=op.f("ck_change_requests_status"),
        ),
        sa.CheckConstraint("approvals_required >= 1", name=op.f("ck_change_requests_approvals_required")),
        sa.CheckConstraint(
            "(status IN ('applied', 'reverted')) = (previous IS NOT NULL AND applied_at IS NOT NULL)",
            name=op.f("ck_change_requests_applied_keeps_previous"),
        ),
        sa.ForeignKeyConstraint(
            ["merchant_id"], ["merchants.id"], name=op.f("fk_change_requests_merchant_id_merchants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_change_requests")),
    )
    op.create_index("ix_change_requests_merchant_id_id", "change_requests", ["merchant_id", "id"], unique=False)
    op.create_index(
        "ix_change_requests_due",
        "change_requests",
        ["apply_at"],
        unique=False,
        postgresql_where=sa.text("status = 'approved'"),
    )
    op.create_table(
        "change_request_approvals",
        sa.Column("change_request_id", sa.String(), nullable=False),
        sa.Column("merchant_id", sa.String(), nullable=False),
        sa.Column("principal_id", sa.String(), nullable=False),
        sa.Column("author_id", sa.String(), nullable=False),
        sa.Column("approved_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("principal_id <> author_id", name=op.f("ck_change_request_approvals_not_the_author")),
        sa.ForeignKeyConstraint(
            ["change_request_id"],
            ["change_requests.id"],
            name=op.f("fk_change_request_approvals_change_request_id_change_requests"),
        ),
        sa.PrimaryKeyConstraint("change_request_id", "principal_id", name=op.f("pk_change_request_approvals")),
    )


def downgrade() -> None:
    op.execute("SET LOCAL lock_timeout = '2s'")
    op.execute("SET LOCAL statement_timeout = '60s'")
    refuse_if_rows("change_requests")
    if op.get_bind().execute(sa.text("SELECT EXISTS (SELECT 1 FROM products WHERE NOT active)")).scalar():
        raise RuntimeError("refusing to downgrade: inactive products would be sold again; reactivate or keep them")
    op.drop_table("change_request_approvals")
    op.drop_index(
        "ix_change_requests_due", table_name="change_requests", postgresql_where=sa.text("status = 'approved'")
    )
    op.drop_index("ix_change_requests_merchant_id_id", table_name="change_requests")
    op.drop_table("change_requests")
    op.drop_table("merchant_configs")
    op.drop_column("products", "active")
