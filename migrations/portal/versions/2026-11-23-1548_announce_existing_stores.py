"""announce existing stores: a store.created event in the outbox for every store that has none

Other services learn which merchant owns a store from the portal's store.created events (device-auth registers
devices only for a merchant's own stores; smarttab answers a store's live view only to its owner). Stores
created before those events existed are announced here, through the outbox like any event. Each event id is
derived from the store id ('evt_' + its ULID), so the statement is re-runnable: a store created by an old
portal process during the deploy is announced by running it again (`smartpos migrate portal downgrade -1`
then `upgrade head`). Downgrade keeps the events: they describe facts that stay true.

Revision ID: 2b074706b482
Revises: e02f42da4db6
Create Date: 2026-11-23 15:48:58.430467+00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = '2b074706b482'
down_revision: str | Sequence[str] | None = 'e02f42da4db6'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Never queue behind a long transaction holding a lock the shops need: give up and retry the deploy instead.
LOCK_TIMEOUT = "2s"
STATEMENT_TIMEOUT = "60s"


def _timeouts() -> None:
    op.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
    op.execute(f"SET LOCAL statement_timeout = '{STATEMENT_TIMEOUT}'")


ANNOUNCE = """
INSERT INTO outbox (id, type, merchant_id, store_id, subject, version, payload, created_at)
SELECT 'evt_' || substr(s.id, 5), 'store.created', s.merchant_id, s.id, s.id, 1,
       jsonb_build_object(
           'id', 'evt_' || substr(s.id, 5), 'type', 'store.created', 'source', 'portal',
           'time', to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
           'merchant_id', s.merchant_id, 'store_id', s.id, 'subject', s.id, 'version', 1,
           'data', jsonb_build_object(
               'id', s.id, 'merchant_id', s.merchant_id, 'name', s.name,
               'created_at', to_char(s.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'))),
       now()
FROM stores s
WHERE NOT EXISTS (SELECT 1 FROM outbox o WHERE o.type = 'store.created' AND o.subject = s.id)
ON CONFLICT (id) DO NOTHING
"""


def upgrade() -> None:
    _timeouts()
    op.execute(ANNOUNCE)


def downgrade() -> None:
    _timeouts()  # nothing to undo: the announcements stay (and were probably published already)
