"""partner clients: a third kind of API client (partners' engineers, for the console), without a merchant

- `oauth_clients.role` may be `partner`; admins and partners have no merchant, merchants have one. The table is
  small (one row per API client): the CHECKs are swapped in place under a short lock timeout.

Downgrade refuses while partner clients exist (their tokens would lose their meaning).

Revision ID: d41f7a2c9e10
Revises: b807260ca1ca
Create Date: 2026-11-24 12:00:00.000000+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = 'd41f7a2c9e10'
down_revision: str | Sequence[str] | None = 'b807260ca1ca'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _checks(roles: str, without_merchant: str) -> None:
    """Swap the two CHECKs in one transaction, so no moment is left without them. oauth_clients holds one row per
    API client (a handful): checking them while the table is locked takes no time."""
    op.execute("SET LOCAL lock_timeout = '2s'")
    op.execute("SET LOCAL statement_timeout = '60s'")
    checks = {
        "ck_oauth_clients_role": f"role IN ({roles})",
        "ck_oauth_clients_merchant_unless_admin": f"({without_merchant}) = (merchant_id IS NULL)",
    }
    for name, check in checks.items():
        op.execute(
            "-- squawk-ignore ban-drop-constraint\n"  # replaced in the same transaction by a wider one
            f"ALTER TABLE oauth_clients DROP CONSTRAINT {name}"
        )
        op.execute(
            f"-- squawk-ignore constraint-missing-not-valid\nALTER TABLE oauth_clients ADD CONSTRAINT {name} CHECK ({check})"
        )


def upgrade() -> None:
    _checks("'merchant', 'admin', 'partner'", "role IN ('admin', 'partner')")


def downgrade() -> None:
    if not op.get_context().as_sql:
        partners = op.get_bind().execute(sa.text("SELECT count(*) FROM oauth_clients WHERE role = 'partner'"))
        if partners.scalar():
            raise RuntimeError(
                "refusing to downgrade: partner clients exist (oauth_clients holds rows with role 'partner'); "
                "revoke and delete them first"
            )
    _checks("'merchant', 'admin'", "role = 'admin'")
