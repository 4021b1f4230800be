"""test clocks remember the certification run that advanced them

- `test_clocks.certification_run` (nullable): the run (`crt_…`) named by the `SmartPOS-Certification-Run` header
  of the last advance. The scheduler tags the events of the overnight run that advance causes (Z reports, credit
  programme entries) with it, so the console judges "close of business" and "credits reallocated" for that run.

Downgrade drops the column: a clock advanced afterwards tags nothing (sandbox only; no money data).

Revision ID: d7a2c9e4f1b6
Revises: c3e8f6a0d4b9
Create Date: 2026-11-24 13:00:00.000000+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = 'd7a2c9e4f1b6'
down_revision: str | Sequence[str] | None = 'c3e8f6a0d4b9'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("SET LOCAL lock_timeout = '2s'")
    op.execute("SET LOCAL statement_timeout = '60s'")
    op.add_column("test_clocks", sa.Column("certification_run", sa.String(), nullable=True))


def downgrade() -> None:
    op.execute("SET LOCAL lock_timeout = '2s'")
    op.execute("SET LOCAL statement_timeout = '60s'")
    op.drop_column("test_clocks", "certification_run")
