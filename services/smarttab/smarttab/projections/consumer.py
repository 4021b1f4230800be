"""The projector: a durable JetStream pull consumer (shared by every smarttab process) with explicit acks,
bounded redelivery and a dead-letter record; it applies order events to `live_orders` idempotently (by entity
version), so redeliveries and restarts are harmless."""

from __future__ import annotations

import asyncio
import contextlib
import json
from datetime import datetime
from typing import Any

import structlog
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.errors import TimeoutError as NatsTimeout
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from smartpos_shared.events import ensure_stream
from smartpos_shared.nats import NatsConnection

from . import repository

log = structlog.get_logger("smartpos.smarttab.projector")

DURABLE = "smarttab-projections"
FILTER = "smartpos.*.order.*"
MAX_DELIVER = 5
BATCH = 200


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


class Projector:
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        nats: NatsConnection,
        durable: str = DURABLE,
        start_at_new: bool = False,
        inactive_seconds: float | None = None,
    ) -> None:
        self.sessionmaker = sessionmaker
        self.nats = nats
        self.durable = durable
        self.start_at_new = start_at_new
        self.inactive_seconds = inactive_seconds
        self._subscription: Any = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.nats.on_connected(self._subscribe)
        self._task = asyncio.create_task(self._run(), name="projector")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _subscribe(self, client: Client) -> None:
        js = await ensure_stream(client)
        self._subscription = await js.pull_subscribe(
            FILTER,
            durable=self.durable,
            config=ConsumerConfig(
                ack_policy=AckPolicy.EXPLICIT,
                deliver_policy=DeliverPolicy.NEW if self.start_at_new else DeliverPolicy.ALL,
                max_deliver=MAX_DELIVER,
                ack_wait=30,
                max_ack_pending=10_000,
                inactive_threshold=self.inactive_seconds,
            ),
        )

    async def _run(self) -> None:
        while True:
            subscription = self._subscription
            if subscription is None or not self.nats.is_connected:
                await asyncio.sleep(0.2)
                continue
            try:
                messages = await subscription.fetch(BATCH, timeout=1)
            except (NatsTimeout, TimeoutError):
                continue
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("projector_fetch_failed", error=repr(exc))
                await asyncio.sleep(0.5)
                continue
            for message in messages:
                await self._handle(message)

    async def _handle(self, message: Msg) -> None:
        metadata = message.metadata
        try:
            event = json.loads(message.data)
            async with self.sessionmaker() as session, session.begin():
                await repository.upsert_order(session, order_values(event, metadata.sequence.stream))
        except Exception as exc:
            if metadata.num_delivered >= MAX_DELIVER:
                await self._dead_letter(message, exc)
                await message.ack()
            else:
                log.warning("projection_failed", error=repr(exc), deliveries=metadata.num_delivered)
                await message.nak(delay=0.5 * metadata.num_delivered)
            return
        await message.ack()

    async def _dead_letter(self, message: Msg, exc: Exception) -> None:
        try:
            event_id = json.loads(message.data).get("id")
        except (ValueError, AttributeError):
            event_id = None
        log.error("projection_dead_lettered", subject=message.subject, error=repr(exc))
        async with self.sessionmaker() as session, session.begin():
            await repository.add_dead_letter(
                session,
                event_id=event_id,
                subject=message.subject,
                stream_seq=message.metadata.sequence.stream,
                deliveries=message.metadata.num_delivered,
                error=repr(exc)[:2000],
                payload=message.data.decode(errors="replace")[:100_000],
            )
