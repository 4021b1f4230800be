"""console: what a pilot's health is computed from

- `pilot_payments`: per rollout in pilot, each card or qr payment at its merchant since the pilot began, as the
  event stream showed it (created, first final answer, webhook mismatches). `GET /rollouts/{id}/health` reads it;
  promotion requires it healthy.

Downgrade drops it: it is a projection of the event stream (rebuilt by replaying the stream within its 7 days).

Revision ID: c8a1e5f7b3d4
Revises: b6e8c3f5d9a2
Create Date: 2026-11-24 18:00:00.000000+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = 'c8a1e5f7b3d4'
down_revision: str | Sequence[str] | None = 'b6e8c3f5d9a2'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("SET LOCAL lock_timeout = '2s'")
    op.execute("SET LOCAL statement_timeout = '60s'")
    op.create_table(
        "pilot_payments",
        sa.Column("rollout_id", sa.String(), nullable=False),
        sa.Column("payment_id", sa.String(), nullable=False),
        sa.Column("method", sa.String(), nullable=True),
        sa.Column("status", sa.String(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("settled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("mismatch_events", postgresql.ARRAY(sa.String()), server_default=sa.text("'{}'"), nullable=False),
        sa.ForeignKeyConstraint(["rollout_id"], ["rollouts.id"], name=op.f("fk_pilot_payments_rollout_id_rollouts")),
        sa.PrimaryKeyConstraint("rollout_id", "payment_id", name=op.f("pk_pilot_payments")),
    )


def downgrade() -> None:
    op.execute("SET LOCAL lock_timeout = '2s'")
    op.execute("SET LOCAL statement_timeout = '60s'")
    op.drop_table("pilot_payments")
