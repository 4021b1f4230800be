"""console: certification runs and their evidence

- `certification_runs` (`crt_`): an integration's run of a versioned checklist (`pos-core-v1`).
- `certification_evidence`: the platform's events of a run (tagged `certification_run`, or about a resource a
  tagged event named), projected from JetStream; `certification_resources` remembers those resources.
- `dead_letters`: events the evidence projector gave up on.

Downgrade refuses while runs exist.

Revision ID: 9a4e6c1d3f52
Revises: 8f3d5b0c2e41
Create Date: 2026-11-24 15:00:00.000000+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from smartpos_shared.migrations import refuse_if_rows

revision: str = '9a4e6c1d3f52'
down_revision: str | Sequence[str] | None = '8f3d5b0c2e41'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("SET LOCAL lock_timeout = '2s'")
    op.execute("SET LOCAL statement_timeout = '60s'")
    op.create_table(
        "certification_runs",
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("integration_id", sa.String(), nullable=False),
        sa.Column("partner_id", sa.String(), nullable=False),
        sa.Column("checklist", sa.String(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("status IN ('running', 'completed')", name=op.f("ck_certification_runs_status")),
        sa.ForeignKeyConstraint(
            ["integration_id"], ["integrations.id"], name=op.f("fk_certification_runs_integration_id_integrations")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_certification_runs")),
    )
    op.create_table(
        "certification_evidence",
        sa.Column("event_id", sa.String(), nullable=False),
        sa.Column("run_id", sa.String(), nullable=False),
        sa.Column("type", sa.String(), nullable=False),
        sa.Column("subject", sa.String(), nullable=False),
        sa.Column("time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("data", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.PrimaryKeyConstraint("event_id", name=op.f("pk_certification_evidence")),
    )
    op.execute(
        "-- squawk-ignore require-concurrent-index-creation\n"  # a new, empty table
        "CREATE INDEX ix_certification_evidence_run_id ON certification_evidence (run_id, time)"
    )
    op.create_table(
        "certification_resources",
        sa.Column("resource_id", sa.String(), nullable=False),
        sa.Column("run_id", sa.String(), nullable=False),
        sa.PrimaryKeyConstraint("resource_id", name=op.f("pk_certification_resources")),
    )
    op.create_table(
        "dead_letters",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=True), nullable=False),
        sa.Column("event_id", sa.String(), nullable=True),
        sa.Column("subject", sa.String(), nullable=False),
        sa.Column("stream_seq", sa.BigInteger(), nullable=False),
        sa.Column("deliveries", sa.Integer(), nullable=False),
        sa.Column("error", sa.String(), nullable=False),
        sa.Column("payload", sa.String(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dead_letters")),
    )


def downgrade() -> None:
    op.execute("SET LOCAL lock_timeout = '2s'")
    op.execute("SET LOCAL statement_timeout = '60s'")
    refuse_if_rows("certification_runs")
    op.drop_table("dead_letters")
    op.drop_table("certification_resources")
    op.drop_table("certification_evidence")
    op.drop_table("certification_runs")
