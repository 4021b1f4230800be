"""What smarttab projects from the event stream: orders (live views, today's totals) and stores (who owns which
store, so a store's live view answers 404 to anyone else — and to anyone, for a store that does not exist)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from . import repository

ORDER_EVENTS = "smartpos.*.order.*"
STORE_EVENTS = "smartpos.*.store.*"


def order_values(event: dict[str, Any], stream_seq: int) -> dict[str, Any]:
    order = event["data"]
    return {
        "order_id": order["id"],
        "merchant_id": event["merchant_id"],
        "store_id": order["store_id"],
        "status": order["status"],
        "total_amount": int(order["total_amount"]),
        "currency": order["currency"],
        "version": int(event["version"]),
        "created_at": datetime.fromisoformat(order["created_at"]),
        "completed_at": datetime.fromisoformat(order["completed_at"]) if order.get("completed_at") else None,
        "order": order,
        "stream_seq": stream_seq,
    }


async def apply_order_event(session: AsyncSession, event: dict[str, Any], stream_seq: int) -> None:
    await repository.upsert_order(session, order_values(event, stream_seq))


async def apply_store_event(session: AsyncSession, event: dict[str, Any], stream_seq: int) -> None:
    store = event["data"]
    await repository.upsert_store(
        session,
        store_id=store["id"],
        merchant_id=event["merchant_id"],
        name=store["name"],
        version=int(event["version"]),
    )
