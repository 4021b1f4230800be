"""console: rollouts and the console's outbox

- `rollouts` (`rol_`): an integration live for one merchant first (`pilot`, with its window `pilot_ends_at`), then
  for all (`live`), or stopped (`rolled_back`). At most one active (pilot or live) rollout per integration (a
  partial unique index), so two admins cannot start two at once.
- `outbox`: the console's events (`rollout.started|promoted|rolled_back`), written in the transaction of the change
  and published by the relay; device-auth learns rollouts from them.

Downgrade refuses while rollouts or unpublished events exist.

Revision ID: 8f3d5b0c2e41
Revises: 7e2c4a9b1d30
Create Date: 2026-11-24 14:00:00.000000+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from smartpos_shared.migrations import refuse_if_rows

revision: str = '8f3d5b0c2e41'
down_revision: str | Sequence[str] | None = '7e2c4a9b1d30'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("SET LOCAL lock_timeout = '2s'")
    op.execute("SET LOCAL statement_timeout = '60s'")
    op.create_table(
        "rollouts",
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("integration_id", sa.String(), nullable=False),
        sa.Column("merchant_id", sa.String(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("pilot_days", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("pilot_ends_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("promoted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("rolled_back_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.CheckConstraint("status IN ('pilot', 'live', 'rolled_back')", name=op.f("ck_rollouts_status")),
        sa.CheckConstraint("pilot_days BETWEEN 1 AND 90", name=op.f("ck_rollouts_pilot_days")),
        sa.ForeignKeyConstraint(
            ["integration_id"], ["integrations.id"], name=op.f("fk_rollouts_integration_id_integrations")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rollouts")),
    )
    # rollouts is new and empty: a plain index build.
    op.execute(
        "-- squawk-ignore require-concurrent-index-creation\n"
        "CREATE UNIQUE INDEX uq_rollouts_active_integration ON rollouts (integration_id)"
        " WHERE status IN ('pilot', 'live')"
    )
    op.create_table(
        "outbox",
        sa.Column("position", sa.BigInteger(), sa.Identity(always=True), nullable=False),
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("type", sa.String(), nullable=False),
        sa.Column("merchant_id", sa.String(), nullable=False),
        sa.Column("store_id", sa.String(), nullable=True),
        sa.Column("subject", sa.String(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("payload", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("position", name=op.f("pk_outbox")),
        sa.UniqueConstraint("id", name=op.f("uq_outbox_id")),
    )
    op.execute(
        "-- squawk-ignore require-concurrent-index-creation\n"
        "CREATE INDEX ix_outbox_unpublished ON outbox (position) WHERE published_at IS NULL"
    )


def downgrade() -> None:
    op.execute("SET LOCAL lock_timeout = '2s'")
    op.execute("SET LOCAL statement_timeout = '60s'")
    refuse_if_rows("rollouts")
    if not op.get_context().as_sql:
        waiting = op.get_bind().execute(sa.text("SELECT count(*) FROM outbox WHERE published_at IS NULL"))
        if waiting.scalar():
            raise RuntimeError("refusing to downgrade: the outbox holds events not published yet")
    op.drop_table("outbox")
    op.drop_table("rollouts")
