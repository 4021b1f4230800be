"""initial empty schema

Revision ID: 323296a50686
Revises: 
Create Date: 2026-11-21 14:55:34.901732+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '323296a50686'
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Never queue behind a long transaction holding a lock the shops need: give up and retry the deploy instead.
LOCK_TIMEOUT = "2s"
STATEMENT_TIMEOUT = "60s"


def _timeouts() -> None:
    op.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
    op.execute(f"SET LOCAL statement_timeout = '{STATEMENT_TIMEOUT}'")


def upgrade() -> None:
    _timeouts()
    pass


def downgrade() -> None:
    _timeouts()
    pass
