"""Durable event projections: a JetStream pull consumer (one durable shared by every process of a service) with
explicit acks, bounded redelivery and a dead-letter row, applying each event to a service's own tables in one
transaction. Handlers must be idempotent (by resource version or primary key): redelivery and restarts happen.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

import structlog
from fastapi import FastAPI
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.errors import TimeoutError as NatsTimeout
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError
from sqlalchemy import BigInteger, Identity, Integer, String, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Mapped, mapped_column

from .db import utcnow
from .events import STREAM, ensure_stream
from .nats import NatsConnection

log = structlog.get_logger("smartpos.projector")

MAX_DELIVER = 5
BATCH = 200
CONSUMER_CHECK_SECONDS = 5.0

Apply = Callable[[AsyncSession, dict[str, Any], int], Awaitable[None]]
"""Apply one event (the decoded envelope) with its stream sequence, inside the projector's transaction."""


class DeadLetterMixin:
    """Columns of a service's `dead_letters` table: events a projector gave up on, kept for an operator."""

    __tablename__ = "dead_letters"

    id: Mapped[int] = mapped_column(BigInteger, Identity(always=True), primary_key=True)
    event_id: Mapped[str | None] = mapped_column(String)
    subject: Mapped[str] = mapped_column(String)
    stream_seq: Mapped[int] = mapped_column(BigInteger)
    deliveries: Mapped[int] = mapped_column(Integer)
    error: Mapped[str] = mapped_column(String)
    payload: Mapped[str] = mapped_column(String)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, server_default=text("now()"))


class EventProjector:
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        nats: NatsConnection,
        *,
        subject: str,
        durable: str,
        apply: Apply,
        dead_letter_model: type[DeadLetterMixin],
        start_at_new: bool = False,
        inactive_seconds: float | None = None,
    ) -> None:
        self.sessionmaker = sessionmaker
        self.nats = nats
        self.subject = subject
        self.durable = durable
        self.apply = apply
        self.dead_letter_model = dead_letter_model
        self.start_at_new = start_at_new
        self.inactive_seconds = inactive_seconds
        self._subscription: Any = None
        self._js: JetStreamContext | None = None
        self._last_check = time.monotonic()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.nats.on_connected(self._subscribe)
        self._task = asyncio.create_task(self._run(), name=f"projector:{self.durable}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _subscribe(self, client: Client) -> None:
        js = await ensure_stream(client)
        self._js = js
        self._subscription = await js.pull_subscribe(
            self.subject,
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
                await self._recreate_if_gone()
                continue
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("projector_fetch_failed", durable=self.durable, error=repr(exc))
                await asyncio.sleep(0.5)
                continue
            await self._handle_batch(messages)

    async def _recreate_if_gone(self) -> None:
        """A durable can disappear under us (deleted by an operator, lost by a cluster, or expired by its
        inactivity threshold while this process was paused): when idle, check now and then, and create it again."""
        now = time.monotonic()
        if self._js is None or now - self._last_check < CONSUMER_CHECK_SECONDS or self.nats.client is None:
            return
        self._last_check = now
        try:
            await self._js.consumer_info(STREAM, self.durable)
        except NotFoundError:
            log.warning("projector_consumer_gone", durable=self.durable)
            await self._subscribe(self.nats.client)
        except Exception as exc:  # NATS trouble is the connection's to handle; try again at the next check
            log.debug("projector_consumer_check_failed", durable=self.durable, error=repr(exc))

    async def _handle_batch(self, messages: list[Msg]) -> None:
        """A fetched batch in one transaction (a busy stream costs one commit per batch, not per event); if any
        event fails, the batch rolls back and each event is retried alone, so one poison event is isolated."""
        if len(messages) > 1:
            try:
                async with self.sessionmaker() as session, session.begin():
                    for message in messages:
                        await self.apply(session, json.loads(message.data), message.metadata.sequence.stream)
            except Exception:  # one of them is bad (or the database hiccupped): take them one by one
                log.debug("projector_batch_failed", durable=self.durable, size=len(messages))
            else:
                for message in messages:
                    await message.ack()
                return
        for message in messages:
            await self._handle(message)

    async def _handle(self, message: Msg) -> None:
        metadata = message.metadata
        try:
            event = json.loads(message.data)
            async with self.sessionmaker() as session, session.begin():
                await self.apply(session, event, metadata.sequence.stream)
        except Exception as exc:
            if metadata.num_delivered >= MAX_DELIVER:
                await self._dead_letter(message, exc)
                await message.ack()
            else:
                log.warning(
                    "projection_failed", durable=self.durable, error=repr(exc), deliveries=metadata.num_delivered
                )
                await message.nak(delay=0.5 * metadata.num_delivered)
            return
        await message.ack()

    async def _dead_letter(self, message: Msg, exc: Exception) -> None:
        try:
            event_id = json.loads(message.data).get("id")
        except (ValueError, AttributeError):
            event_id = None
        log.error("projection_dead_lettered", durable=self.durable, subject=message.subject, error=repr(exc))
        async with self.sessionmaker() as session, session.begin():
            session.add(
                self.dead_letter_model(  # type: ignore[call-arg]  # the concrete model is a declarative class
                    event_id=event_id,
                    subject=message.subject,
                    stream_seq=message.metadata.sequence.stream,
                    deliveries=message.metadata.num_delivered,
                    error=repr(exc)[:2000],
                    payload=message.data.decode(errors="replace")[:100_000],
                )
            )


@asynccontextmanager
async def projecting(
    app: FastAPI,
    *,
    subject: str,
    durable: str,
    apply: Apply,
    dead_letter_model: type[DeadLetterMixin],
    start_at_new: bool = False,
    inactive_seconds: float | None = None,
) -> AsyncIterator[EventProjector]:
    """A projector of `subject` on the app's database and NATS connection, running for the block (an app
    extension's body: `async with projecting(app, ...): yield`)."""
    projector = EventProjector(
        app.state.sessionmaker,
        app.state.nats,
        subject=subject,
        durable=durable,
        apply=apply,
        dead_letter_model=dead_letter_model,
        start_at_new=start_at_new,
        inactive_seconds=inactive_seconds,
    )
    await projector.start()
    try:
        yield projector
    finally:
        await projector.stop()
