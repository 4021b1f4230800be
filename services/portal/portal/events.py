"""Portal events written through the ORM session (merchants and stores); the checkout writes its own events in its
save statement (checkout/repository.py). Both go to the same outbox, published by the relay."""

from __future__ import annotations

from typing import Any

from smartpos_shared.db import Transaction
from smartpos_shared.events import add_event

from .models import OutboxEvent

SOURCE = "portal"


def emit(
    transaction: Transaction,
    event_type: str,
    *,
    merchant_id: str,
    store_id: str | None,
    subject: str,
    version: int,
    data: dict[str, Any],
) -> None:
    add_event(
        transaction,
        OutboxEvent,
        source=SOURCE,
        event_type=event_type,
        merchant_id=merchant_id,
        store_id=store_id,
        subject=subject,
        version=version,
        data=data,
    )
