"""Events: the CloudEvents-shaped envelope, the `SMARTPOS` JetStream stream, the transactional outbox and its
relay.

A state change and its event rows commit in one transaction (`add_event`); the relay publishes committed rows
in order with `Nats-Msg-Id` = event id (so the stream drops duplicates from a retry) and marks them published only
after JetStream acknowledged them. NATS being down delays events; it never loses them and never fails a request.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from contextvars import ContextVar
from datetime import datetime, timedelta
from typing import Any

import asyncpg
import orjson
import structlog
from fastapi import FastAPI
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import DiscardPolicy, RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import BadRequestError
from sqlalchemy import BigInteger, DateTime, Identity, Index, Integer, String
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from .db import Transaction, utcnow
from .ids import new_id
from .nats import NatsConnection

log = structlog.get_logger("smartpos.events")

STREAM = "SMARTPOS"
SUBJECTS = "smartpos.>"
DUPLICATE_WINDOW = timedelta(minutes=5)
MAX_AGE = timedelta(days=7)
MAX_BYTES = 2 * 1024**3
MAX_MSG_SIZE = 1024 * 1024


def subject_for(merchant_id: str, event_type: str) -> str:
    return f"smartpos.{merchant_id}.{event_type}"


def stream_config() -> StreamConfig:
    return StreamConfig(
        name=STREAM,
        subjects=[SUBJECTS],
        storage=StorageType.FILE,
        retention=RetentionPolicy.LIMITS,
        discard=DiscardPolicy.OLD,
        max_age=MAX_AGE.total_seconds(),
        max_bytes=MAX_BYTES,
        max_msg_size=MAX_MSG_SIZE,
        duplicate_window=DUPLICATE_WINDOW.total_seconds(),
        num_replicas=1,
    )


async def ensure_stream(client: Client) -> JetStreamContext:
    """Create the `SMARTPOS` stream, or bring an existing one to our configuration. Idempotent."""
    js = client.jetstream()
    config = stream_config()
    try:
        await js.add_stream(config)
    except BadRequestError:
        await js.update_stream(config)
    return js


class OutboxMixin:
    """Columns of a service's `outbox` table. `position` orders rows in the order they were written."""

    __tablename__ = "outbox"

    position: Mapped[int] = mapped_column(BigInteger, Identity(always=True), primary_key=True)
    id: Mapped[str] = mapped_column(String, unique=True)
    type: Mapped[str] = mapped_column(String)
    merchant_id: Mapped[str] = mapped_column(String)
    store_id: Mapped[str | None] = mapped_column(String)
    subject: Mapped[str] = mapped_column(String)
    version: Mapped[int] = mapped_column(Integer)
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    published_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    @classmethod
    def unpublished_index(cls) -> Index:
        # Partial index: the relay only ever scans what is still waiting.
        return Index("ix_outbox_unpublished", "position", postgresql_where="published_at IS NULL")


# The certification run (console `crt_…`) the current request belongs to (header `SmartPOS-Certification-Run`, set
# by the sandbox portal's middleware): the events the request writes carry it as `certification_run`, so the
# console judges the run from the events themselves.
certification_run: ContextVar[str | None] = ContextVar("certification_run", default=None)


def envelope(
    *,
    event_id: str,
    event_type: str,
    source: str,
    time: datetime,
    merchant_id: str,
    store_id: str | None,
    subject: str,
    version: int,
    data: dict[str, Any],
) -> dict[str, Any]:
    body = {
        "id": event_id,
        "type": event_type,
        "source": source,
        "time": time.isoformat().replace("+00:00", "Z"),
        "merchant_id": merchant_id,
        "store_id": store_id,
        "subject": subject,
        "version": version,
        "data": data,
    }
    run = certification_run.get()
    if run is not None:
        body["certification_run"] = run
    return body


def envelope_bytes(
    *,
    event_id: str,
    event_type: str,
    source: str,
    time: datetime,
    merchant_id: str,
    store_id: str | None,
    subject: str,
    version: int,
    data: bytes,
) -> bytes:
    """The envelope as JSON around `data`, a resource representation already serialized (never parsed again)."""
    body: dict[str, Any] = {
        "id": event_id,
        "type": event_type,
        "source": source,
        "time": time,
        "merchant_id": merchant_id,
        "store_id": store_id,
        "subject": subject,
        "version": version,
        "data": orjson.Fragment(data),
    }
    run = certification_run.get()
    if run is not None:
        body["certification_run"] = run
    return orjson.dumps(body, option=orjson.OPT_UTC_Z)


def add_event(
    transaction: Transaction,
    outbox_model: type[OutboxMixin],
    *,
    source: str,
    event_type: str,
    merchant_id: str,
    store_id: str | None,
    subject: str,
    version: int,
    data: dict[str, Any],
) -> str:
    """Stage an event in the caller's transaction; it is published only if that transaction commits."""
    event_id = new_id("evt")
    now = utcnow()
    body = envelope(
        event_id=event_id,
        event_type=event_type,
        source=source,
        time=now,
        merchant_id=merchant_id,
        store_id=store_id,
        subject=subject,
        version=version,
        data=data,
    )
    transaction.session.add(
        outbox_model(  # type: ignore[call-arg]  # the concrete model is a declarative class
            id=event_id,
            type=event_type,
            merchant_id=merchant_id,
            store_id=store_id,
            subject=subject,
            version=version,
            payload=body,
            created_at=now,
        )
    )
    transaction.events_written = True
    return event_id


NOTIFY_CHANNEL = "smartpos_outbox"


class OutboxRelay:
    """Publishes committed outbox rows to JetStream and marks them published only after the ack.

    Safe with several relays at once without reordering one merchant's events: work is partitioned by merchant,
    each merchant's rows are published by whoever holds that merchant's advisory lock, in `position` order,
    pipelined (publish all, then await the acks). Woken right after a commit (in process, and across processes by
    LISTEN/NOTIFY); polling is only the fallback. Runs on one asyncpg connection of its own; a payload goes from
    the row to NATS as the text PostgreSQL returns (never parsed and serialized again).
    """

    def __init__(
        self,
        dsn: str,
        nats: NatsConnection,
        outbox_model: type[OutboxMixin],
        *,
        batch_size: int = 500,
        poll_interval: float = 1.0,
        listen: bool = True,
    ) -> None:
        self.dsn = dsn.replace("postgresql+asyncpg://", "postgresql://", 1)
        self.nats = nats
        self.table = outbox_model.__tablename__
        self.batch_size = batch_size
        self.poll_interval = poll_interval
        self.listen = listen
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._listener: asyncio.Task[None] | None = None
        self._js: JetStreamContext | None = None
        self._conn: Any = None
        self.published_total = 0
        self.coalesce_seconds = 0.002
        # Two statements, in this order: the merchants with waiting rows whose advisory lock this relay gets, then
        # (a new statement, so a snapshot taken after the locks) their oldest waiting rows. One statement that
        # took the locks while scanning could take a merchant's lock the moment another relay committed and
        # released it mid-scan — and then, reading the scan's older snapshot, skip that merchant's earlier rows
        # and publish later ones first. A transaction-level advisory lock taken twice simply stacks.
        self._lock_merchants = (
            "SELECT merchant_id FROM ("  # noqa: S608 - a model's table
            f" SELECT merchant_id, min(position) AS first FROM {self.table} WHERE published_at IS NULL"
            " GROUP BY merchant_id ORDER BY first LIMIT $1) waiting"
            " WHERE pg_try_advisory_xact_lock(hashtextextended('outbox:' || merchant_id, 0))"
        )
        self._select = (
            f"SELECT position, id, merchant_id, type, payload::text FROM {self.table}"  # noqa: S608 - a model's table
            " WHERE published_at IS NULL AND merchant_id = ANY($2::text[]) ORDER BY position LIMIT $1"
        )
        self._mark = f"UPDATE {self.table} SET published_at = $2 WHERE position = ANY($1::bigint[])"  # noqa: S608

    def wake(self) -> None:
        """Called right after a commit that wrote events, so they go out now rather than at the next poll."""
        self._wake.set()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="outbox-relay")
        if self.listen:
            self._listener = asyncio.create_task(self._listen(), name="outbox-listen")

    async def stop(self) -> None:
        for task in (self._listener, self._task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._listener = self._task = None
        await self._close()

    async def _close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.close()

    async def _listen(self) -> None:
        while True:
            try:
                conn = await asyncpg.connect(self.dsn)
                try:
                    lost = asyncio.Event()
                    conn.add_termination_listener(lambda *_, lost=lost: lost.set())
                    await conn.add_listener(NOTIFY_CHANNEL, lambda *_: self._wake.set())
                    await lost.wait()
                finally:
                    with contextlib.suppress(Exception):
                        await conn.close()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.debug("outbox_listen_failed", error=repr(exc))
                await asyncio.sleep(1)

    async def _run(self) -> None:
        backoff = self.poll_interval
        while True:
            self._wake.clear()
            try:
                published = await self.publish_pending()
                backoff = self.poll_interval
                if published:
                    continue  # there may be more: go again at once
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("outbox_relay_failed", error=repr(exc))
                self._js = None
                await self._close()
                backoff = min(backoff * 2, 5.0)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), backoff)
            # Let commits that arrive together go out in one batch (one transaction, pipelined publishes).
            await asyncio.sleep(self.coalesce_seconds)

    async def _jetstream(self) -> JetStreamContext:
        if self._js is None:
            client = self.nats.client
            if client is None or not client.is_connected:
                raise ConnectionError("NATS is not connected")
            self._js = await ensure_stream(client)
        return self._js

    async def publish_pending(self) -> int:
        """Publish one batch: the oldest waiting rows of every merchant whose advisory lock this relay gets, in
        one transaction whatever the number of merchants."""
        if not self.nats.is_connected:
            return 0
        if self._conn is None or self._conn.is_closed():
            self._conn = await asyncpg.connect(self.dsn)
        conn = self._conn
        async with conn.transaction():
            merchants = [row[0] for row in await conn.fetch(self._lock_merchants, self.batch_size)]
            if not merchants:
                return 0
            rows = await conn.fetch(self._select, self.batch_size, merchants)
            if not rows:
                return 0
            js = await self._jetstream()
            futures = [
                await js.publish_async(
                    subject_for(merchant_id, event_type), payload.encode(), headers={"Nats-Msg-Id": event_id}
                )
                for _, event_id, merchant_id, event_type, payload in rows
            ]
            await asyncio.wait_for(asyncio.gather(*futures), 10)
            await conn.execute(self._mark, [row[0] for row in rows], utcnow())
        self.published_total += len(rows)
        return len(rows)


def outbox_relay_extension(outbox_model: type[OutboxMixin]) -> Callable[[FastAPI], Any]:
    """An app extension that runs the relay in the service process."""

    @asynccontextmanager
    async def extension(app: FastAPI) -> AsyncIterator[None]:
        relay = OutboxRelay(app.state.settings.database_url, app.state.nats, outbox_model)
        app.state.outbox_relay = relay
        app.state.outbox_wake = relay.wake  # commits in this process wake it directly (see db.py)
        await relay.start()
        try:
            yield
        finally:
            await relay.stop()

    return extension


async def run_relay_process(settings: Any, outbox_model: type[OutboxMixin], name: str) -> None:
    """Run an outbox relay as its own process: woken by LISTEN/NOTIFY after each commit, polling as a fallback.

    Keeps event latency independent of how busy the service's request loop is. Stops on SIGTERM/SIGINT.
    """
    import signal

    from .logging import configure_logging

    configure_logging(name, settings.log_level)
    nats = NatsConnection(settings.nats_url, name=name)
    await nats.start()
    relay = OutboxRelay(settings.database_url, nats, outbox_model)
    await relay.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    log.info("relay_started", relay=name)
    await stop.wait()
    await relay.stop()
    await nats.close()
    log.info("relay_stopped", relay=name, published=relay.published_total)
