"""integration rollouts: devices run an integration; device-auth knows where each integration is enabled

- `devices.integration_id` (nullable: devices registered without one are not subject to rollouts).
- `integration_rollouts`: the console's rollouts as device-auth learns them from `rollout.*` events (newest
  version wins): a device of an integration gets tokens only where a rollout enables it (`pilot` for the pilot
  merchant, `live` everywhere).

Downgrade refuses while devices name an integration or rollouts are known.

Revision ID: e52b8c1f7a43
Revises: d41f7a2c9e10
Create Date: 2026-11-24 14:00:00.000000+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from smartpos_shared.migrations import refuse_if_rows

revision: str = 'e52b8c1f7a43'
down_revision: str | Sequence[str] | None = 'd41f7a2c9e10'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("SET LOCAL lock_timeout = '2s'")
    op.execute("SET LOCAL statement_timeout = '60s'")
    op.add_column("devices", sa.Column("integration_id", sa.String(), nullable=True))
    op.create_table(
        "integration_rollouts",
        sa.Column("rollout_id", sa.String(), nullable=False),
        sa.Column("integration_id", sa.String(), nullable=False),
        sa.Column("merchant_id", sa.String(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("status IN ('pilot', 'live', 'rolled_back')", name=op.f("ck_integration_rollouts_status")),
        sa.PrimaryKeyConstraint("rollout_id", name=op.f("pk_integration_rollouts")),
    )
    op.create_index("ix_integration_rollouts_integration_id", "integration_rollouts", ["integration_id"])


def downgrade() -> None:
    op.execute("SET LOCAL lock_timeout = '2s'")
    op.execute("SET LOCAL statement_timeout = '60s'")
    refuse_if_rows("integration_rollouts")
    if not op.get_context().as_sql:
        named = op.get_bind().execute(sa.text("SELECT count(*) FROM devices WHERE integration_id IS NOT NULL"))
        if named.scalar():
            raise RuntimeError("refusing to downgrade: devices name their integration (devices.integration_id)")
    op.drop_index("ix_integration_rollouts_integration_id", table_name="integration_rollouts")
    op.drop_table("integration_rollouts")
    op.drop_column("devices", "integration_id")
