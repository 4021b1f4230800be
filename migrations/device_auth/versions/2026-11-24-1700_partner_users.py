"""device-auth: partner engineers sign in as users too

- `users.partner_id`: for `role = 'partner'` users, the partner organisation they act for (its API client's id);
  their tokens carry it as the `partner_id` claim. The role CHECK admits `partner`; a CHECK ties the two.

Small table (people): the CHECKs are swapped in place under a short lock timeout. Downgrade refuses while partner
users exist.

Revision ID: a74d3e0b9c26
Revises: f63c2d9a8b15
Create Date: 2026-11-24 17:00:00.000000+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = 'a74d3e0b9c26'
down_revision: str | Sequence[str] | None = 'f63c2d9a8b15'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("SET LOCAL lock_timeout = '2s'")
    op.execute("SET LOCAL statement_timeout = '60s'")
    op.add_column("users", sa.Column("partner_id", sa.String(), nullable=True))
    op.execute(
        "-- squawk-ignore ban-drop-constraint\n"  # replaced in the same transaction by a wider one
        "ALTER TABLE users DROP CONSTRAINT ck_users_role"
    )
    op.execute(
        "-- squawk-ignore constraint-missing-not-valid\n"
        "ALTER TABLE users ADD CONSTRAINT ck_users_role CHECK (role IN ('merchant', 'admin', 'partner'))"
    )
    op.execute(
        "-- squawk-ignore constraint-missing-not-valid\n"
        "ALTER TABLE users ADD CONSTRAINT ck_users_partner_engineer CHECK ((role = 'partner') = (partner_id IS NOT NULL))"
    )


def downgrade() -> None:
    op.execute("SET LOCAL lock_timeout = '2s'")
    op.execute("SET LOCAL statement_timeout = '60s'")
    if op.get_bind().execute(sa.text("SELECT EXISTS (SELECT 1 FROM users WHERE role = 'partner')")).scalar():
        raise RuntimeError("refusing to downgrade: partner users exist (they would lose their sign-in)")
    op.execute("-- squawk-ignore ban-drop-constraint\nALTER TABLE users DROP CONSTRAINT ck_users_partner_engineer")
    op.execute("-- squawk-ignore ban-drop-constraint\nALTER TABLE users DROP CONSTRAINT ck_users_role")
    op.execute(
        "-- squawk-ignore constraint-missing-not-valid\n"
        "ALTER TABLE users ADD CONSTRAINT ck_users_role CHECK (role IN ('merchant', 'admin'))"
    )
    op.drop_column("users", "partner_id")
