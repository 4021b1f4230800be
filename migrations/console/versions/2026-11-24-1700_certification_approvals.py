"""console: sign-offs of certification runs

- `certification_approvals`: one row per run and principal (primary key), so nobody signs twice; a run is
  certified (`certification_runs.certified_at`) once a partner and a platform admin — two distinct principals —
  signed a passed run.

Downgrade refuses while approvals exist.

Revision ID: b6e8c3f5d9a2
Revises: a5f7b2e4c8d1
Create Date: 2026-11-24 17:00:00.000000+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from smartpos_shared.migrations import refuse_if_rows

revision: str = 'b6e8c3f5d9a2'
down_revision: str | Sequence[str] | None = 'a5f7b2e4c8d1'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("SET LOCAL lock_timeout = '2s'")
    op.execute("SET LOCAL statement_timeout = '60s'")
    op.create_table(
        "certification_approvals",
        sa.Column("run_id", sa.String(), nullable=False),
        sa.Column("principal_id", sa.String(), nullable=False),
        sa.Column("role", sa.String(), nullable=False),
        sa.Column("approved_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("role IN ('partner', 'admin')", name=op.f("ck_certification_approvals_role")),
        sa.ForeignKeyConstraint(
            ["run_id"], ["certification_runs.id"], name=op.f("fk_certification_approvals_run_id_certification_runs")
        ),
        sa.PrimaryKeyConstraint("run_id", "principal_id", name=op.f("pk_certification_approvals")),
    )
    op.add_column("certification_runs", sa.Column("certified_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    op.execute("SET LOCAL lock_timeout = '2s'")
    op.execute("SET LOCAL statement_timeout = '60s'")
    refuse_if_rows("certification_approvals")
    op.drop_column("certification_runs", "certified_at")
    op.drop_table("certification_approvals")
