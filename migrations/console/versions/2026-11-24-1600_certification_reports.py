"""console: signed certification reports

- `report_keys`: the ES256 keys that sign certification reports (private key Fernet-encrypted at rest with
  CONSOLE_KEY_ENCRYPTION_KEY); retired keys stay published, so a report verifies after a rotation.
- `certification_runs.report`: the signed report (a compact JWS) of a completed run; `result` passed or failed.

Downgrade refuses while reports or keys exist.

Revision ID: a5f7b2e4c8d1
Revises: 9a4e6c1d3f52
Create Date: 2026-11-24 16:00:00.000000+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from smartpos_shared.migrations import refuse_if_rows

revision: str = 'a5f7b2e4c8d1'
down_revision: str | Sequence[str] | None = '9a4e6c1d3f52'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("SET LOCAL lock_timeout = '2s'")
    op.execute("SET LOCAL statement_timeout = '60s'")
    op.create_table(
        "report_keys",
        sa.Column("kid", sa.String(), nullable=False),
        sa.Column("private_key", sa.LargeBinary(), nullable=False),
        sa.Column("public_jwk", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("retired_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("kid", name=op.f("pk_report_keys")),
    )
    op.add_column("certification_runs", sa.Column("report", sa.String(), nullable=True))
    op.add_column("certification_runs", sa.Column("result", sa.String(), nullable=True))


def downgrade() -> None:
    op.execute("SET LOCAL lock_timeout = '2s'")
    op.execute("SET LOCAL statement_timeout = '60s'")
    refuse_if_rows("report_keys")
    op.drop_column("certification_runs", "result")
    op.drop_column("certification_runs", "report")
    op.drop_table("report_keys")
