"""The real-time hub: every smarttab process consumes the order events itself (an ordered JetStream consumer of
its own) and fans each one out to its own sockets of that merchant.

Fan-out never awaits a socket: each socket has a bounded queue drained by its own task, and a socket whose queue
is full is closed (it can resume with `since`) instead of stalling the others.

Resume: a socket that connects with `since=<seq>` is registered first in buffering mode (live events are held),
then what it missed is replayed from JetStream (its merchant's subject only, bounded), then the held events newer
than the last replayed one are released. Every event is delivered once, in stream order: no gap, no duplicate.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from dataclasses import dataclass, field
from typing import Any

import structlog
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.errors import TimeoutError as NatsTimeout
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from smartpos_shared.events import STREAM, ensure_stream
from smartpos_shared.nats import NatsConnection

log = structlog.get_logger("smartpos.smarttab.hub")

LIVE_SUBJECT = "smartpos.*.order.*"
SLOW_CLOSE_CODE = 4408  # the client did not keep up; reconnect with `since`


def ws_message(event: dict[str, Any], seq: int) -> str:
    order = event.get("data") or {}
    return json.dumps(
        {
            "type": event.get("type"),
            "seq": seq,
            "orderId": order.get("id"),
            "storeId": order.get("store_id"),
            "merchantId": event.get("merchant_id"),
            "status": order.get("status"),
            "version": event.get("version"),
            "order": order,
        },
        separators=(",", ":"),
    )


# Control items a socket's queue may carry besides event payloads.
HEARTBEAT = '{"type":"heartbeat"}'
CLOSE_SLOW = "close:slow"
CLOSE_EXPIRED = "close:expired"
CLOSE_GONE = "close:gone"


@dataclass(eq=False)
class Subscriber:
    """One socket. Its queue is bounded by `max_queue` events (checked here, so a control item always fits)."""

    merchant_id: str
    store_id: str | None
    max_queue: int
    buffering: bool = False
    expires_at: float = float("inf")
    queue: asyncio.Queue[tuple[int, str]] = field(default_factory=asyncio.Queue)
    held: list[tuple[int, str]] = field(default_factory=list)
    overflowed: asyncio.Event = field(default_factory=asyncio.Event)
    last_sent: float = 0.0

    def offer(self, seq: int, store_id: str | None, payload: str) -> None:
        if self.overflowed.is_set() or (self.store_id is not None and store_id != self.store_id):
            return
        if self.buffering:
            if len(self.held) >= self.max_queue:
                self._overflow()
                return
            self.held.append((seq, payload))
            return
        if self.queue.qsize() >= self.max_queue:
            self._overflow()
            return
        self.queue.put_nowait((seq, payload))

    def control(self, item: str) -> None:
        self.queue.put_nowait((0, item))

    def _overflow(self) -> None:
        self.overflowed.set()
        self.control(CLOSE_SLOW)

    def release(self, after_seq: int) -> None:
        """End buffering: queue what arrived live during the replay and was not replayed."""
        self.buffering = False
        for seq, payload in self.held:
            if seq > after_seq:
                self.offer(seq, self.store_id, payload)
        self.held.clear()


@dataclass
class Replay:
    messages: list[tuple[int, str]]
    complete: bool
    reason: str | None = None


class Hub:
    def __init__(
        self, nats: NatsConnection, max_queue: int = 1000, replay_limit: int = 1000, heartbeat_seconds: float = 15.0
    ) -> None:
        self.nats = nats
        self.heartbeat_seconds = heartbeat_seconds
        self._sweeper: asyncio.Task[None] | None = None
        self.max_queue = max_queue
        self.replay_limit = replay_limit
        self.by_merchant: dict[str, set[Subscriber]] = {}
        self.last_seq = 0
        self._subscription: Any = None

    async def start(self) -> None:
        self.nats.on_connected(self._subscribe)
        self._sweeper = asyncio.create_task(self._sweep(), name="hub-sweeper")

    async def _sweep(self) -> None:
        """One task for all sockets: heartbeats for idle ones, and closing those whose token expired."""
        interval = min(1.0, self.heartbeat_seconds)
        while True:
            await asyncio.sleep(interval)
            now = time.time()
            for subscribers in list(self.by_merchant.values()):
                for subscriber in list(subscribers):
                    if now >= subscriber.expires_at:
                        subscriber.control(CLOSE_EXPIRED)
                    elif now - subscriber.last_sent >= self.heartbeat_seconds and subscriber.queue.empty():
                        subscriber.control(HEARTBEAT)

    async def stop(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
        if self._subscription is not None:
            with contextlib.suppress(Exception):
                await self._subscription.unsubscribe()

    async def _subscribe(self, client: Client) -> None:
        """(Re)start the live consumer after the last event seen, so a reconnect leaves no gap."""
        old, self._subscription = self._subscription, None
        if old is not None:
            with contextlib.suppress(Exception):
                await old.unsubscribe()
        js = await ensure_stream(client)
        if self.last_seq:
            config = ConsumerConfig(deliver_policy=DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=self.last_seq + 1)
        else:
            config = ConsumerConfig(deliver_policy=DeliverPolicy.NEW)
        self._subscription = await js.subscribe(
            LIVE_SUBJECT, cb=self._on_message, ordered_consumer=True, config=config, pending_msgs_limit=-1
        )

    async def _on_message(self, msg: Msg) -> None:
        seq = msg.metadata.sequence.stream
        if seq <= self.last_seq:
            return
        self.last_seq = seq
        try:
            event = json.loads(msg.data)
        except ValueError:
            return
        subscribers = self.by_merchant.get(event.get("merchant_id", ""))
        if not subscribers:
            return
        payload = ws_message(event, seq)
        store_id = (event.get("data") or {}).get("store_id")
        for subscriber in subscribers:
            subscriber.offer(seq, store_id, payload)

    def register(self, subscriber: Subscriber) -> None:
        self.by_merchant.setdefault(subscriber.merchant_id, set()).add(subscriber)

    def unregister(self, subscriber: Subscriber) -> None:
        subscribers = self.by_merchant.get(subscriber.merchant_id)
        if subscribers is not None:
            subscribers.discard(subscriber)
            if not subscribers:
                del self.by_merchant[subscriber.merchant_id]

    async def replay(self, merchant_id: str, store_id: str | None, since: int) -> Replay:
        """The merchant's order events after `since`, up to the stream's end now (at most `replay_limit`)."""
        client = self.nats.client
        if client is None or not client.is_connected:
            return Replay([], False, "events_unavailable")
        js = client.jetstream()
        state = (await js.stream_info(STREAM)).state
        if since >= state.last_seq:
            return Replay([], True)
        if since + 1 < state.first_seq:
            return Replay([], False, "history_expired")
        subscription = await js.pull_subscribe(
            f"smartpos.{merchant_id}.order.*",
            durable=None,
            config=ConsumerConfig(
                deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
                opt_start_seq=since + 1,
                ack_policy=AckPolicy.NONE,
                inactive_threshold=30,
            ),
        )
        messages: list[tuple[int, str]] = []
        try:
            while True:
                try:
                    batch = await subscription.fetch(256, timeout=0.5)
                except (NatsTimeout, TimeoutError):
                    return Replay(messages, True)  # nothing more for this merchant up to the end of the stream
                for msg in batch:
                    seq = msg.metadata.sequence.stream
                    event = json.loads(msg.data)
                    if store_id is None or (event.get("data") or {}).get("store_id") == store_id:
                        messages.append((seq, ws_message(event, seq)))
                    if len(messages) > self.replay_limit:
                        return Replay(messages[: self.replay_limit], False, "too_many_missed")
                    if msg.metadata.num_pending == 0 or seq >= state.last_seq:
                        return Replay(messages, True)
        finally:
            with contextlib.suppress(Exception):
                await subscription.unsubscribe()
