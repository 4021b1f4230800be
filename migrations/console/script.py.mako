"""${message}

Revision ID: ${up_revision}
Revises: ${down_revision | comma,n}
Create Date: ${create_date}
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
${imports if imports else ""}
revision: str = ${repr(up_revision)}
down_revision: str | Sequence[str] | None = ${repr(down_revision)}
branch_labels: str | Sequence[str] | None = ${repr(branch_labels)}
depends_on: str | Sequence[str] | None = ${repr(depends_on)}

# Never queue behind a long transaction holding a lock the shops need: give up and retry the deploy instead.
LOCK_TIMEOUT = "2s"
STATEMENT_TIMEOUT = "60s"


def _timeouts() -> None:
    op.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
    op.execute(f"SET LOCAL statement_timeout = '{STATEMENT_TIMEOUT}'")


def upgrade() -> None:
    _timeouts()
    ${upgrades if upgrades else "pass"}


def downgrade() -> None:
    _timeouts()
    ${downgrades if downgrades else "pass"}
