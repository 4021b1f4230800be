"""settlement reconciliations: each sealed day's card and qr money matched with the gateway's settlement report

A new table only (written by the overnight run, read by GET /stores/{id}/reconciliations/{date}). Downgrade
refuses while reconciliations exist.

Revision ID: 9b5e3a7d2f86
Revises: 8a4d2f6c1e75
Create Date: 2026-11-24 09:30:00.000000+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from smartpos_shared.migrations import refuse_if_rows

revision: str = '9b5e3a7d2f86'
down_revision: str | Sequence[str] | None = '8a4d2f6c1e75'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("SET LOCAL lock_timeout = '2s'")
    op.execute("SET LOCAL statement_timeout = '60s'")
    op.create_table(
        "reconciliations",
        sa.Column("store_id", sa.String(), nullable=False),
        sa.Column("business_date", sa.Date(), nullable=False),
        sa.Column("merchant_id", sa.String(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("result", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("status IN ('balanced', 'differences')", name=op.f("ck_reconciliations_status")),
        sa.ForeignKeyConstraint(["merchant_id"], ["merchants.id"], name=op.f("fk_reconciliations_merchant_id_merchants")),
        sa.ForeignKeyConstraint(["store_id"], ["stores.id"], name=op.f("fk_reconciliations_store_id_stores")),
        sa.PrimaryKeyConstraint("store_id", "business_date", name=op.f("pk_reconciliations")),
    )
    op.create_index(
        "ix_reconciliations_merchant_id_store_id_business_date",
        "reconciliations",
        ["merchant_id", "store_id", "business_date"],
    )


def downgrade() -> None:
    op.execute("SET LOCAL lock_timeout = '2s'")
    op.execute("SET LOCAL statement_timeout = '60s'")
    refuse_if_rows("reconciliations")
    op.drop_index("ix_reconciliations_merchant_id_store_id_business_date", table_name="reconciliations")
    op.drop_table("reconciliations")
