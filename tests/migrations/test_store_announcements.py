"""The portal migration that announces stores created before store.created events existed."""

from __future__ import annotations

import json

from sqlalchemy import text

from smartpos_cli import migrate
from tests.migrations.conftest import scratch, sync_engine

BEFORE = "e02f42da4db6"  # orders.item_count contract: the revision before the announcements
STORE = "sto_01SEED000000000000000000SS"


def test_existing_stores_get_one_store_created_event_each_rerunnably() -> None:
    db = scratch("portal", "announce")
    migrate.run(migrate.SERVICES["portal"], "upgrade", BEFORE, database_url=db.url)
    engine = sync_engine(db)
    with engine.begin() as conn:
        conn.execute(
            text("INSERT INTO merchants (id, name, currency) VALUES ('mer_01SEED000000000000000000MM', 'K', 'JPY')")
        )
        conn.execute(
            text("INSERT INTO stores (id, merchant_id, name) VALUES (:s, 'mer_01SEED000000000000000000MM', 'Ueno')"),
            {"s": STORE},
        )
    migrate.run(migrate.SERVICES["portal"], "upgrade", "head", database_url=db.url)
    migrate.run(migrate.SERVICES["portal"], "downgrade", "-1", database_url=db.url)  # keeps the events
    migrate.run(migrate.SERVICES["portal"], "upgrade", "head", database_url=db.url)  # announces nothing twice
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT id, type, subject, published_at, payload FROM outbox")).all()
    engine.dispose()
    assert len(rows) == 1
    event_id, kind, subject, published_at, payload = rows[0]
    payload = payload if isinstance(payload, dict) else json.loads(payload)
    assert (event_id, kind, subject, published_at) == ("evt_01SEED000000000000000000SS", "store.created", STORE, None)
    assert payload["merchant_id"] == "mer_01SEED000000000000000000MM" and payload["store_id"] == STORE
    assert payload["data"]["id"] == STORE and payload["data"]["name"] == "Ueno"
    assert payload["data"]["created_at"].endswith("Z") and payload["version"] == 1
