"""A NATS connection that keeps trying: a service starts (and answers /readyz 503) while NATS is down,
connects as soon as it comes up, and reconnects forever after that."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

import nats
import structlog
from nats.aio.client import Client

log = structlog.get_logger("smartpos.nats")

ConnectedHook = Callable[[Client], Awaitable[None]]


class NatsConnection:
    def __init__(self, url: str, name: str) -> None:
        self.url = url
        self.name = name
        self.client: Client | None = None
        self._task: asyncio.Task[None] | None = None
        self._connected = asyncio.Event()
        self._hooks: list[ConnectedHook] = []

    def on_connected(self, hook: ConnectedHook) -> None:
        """Run `hook` after the first connection and after every reconnect (e.g. ensure streams exist)."""
        self._hooks.append(hook)
        if self.is_connected and self.client is not None:  # registered after connecting: run it now
            asyncio.get_running_loop().create_task(self._run_hook(hook, self.client))

    async def _run_hook(self, hook: ConnectedHook, client: Client) -> None:
        try:
            await hook(client)
        except Exception as exc:
            log.warning("nats_hook_failed", error=repr(exc))

    @property
    def is_connected(self) -> bool:
        return self.client is not None and self.client.is_connected

    async def start(self) -> None:
        self._task = asyncio.create_task(self._connect_forever(), name=f"nats-connect-{self.name}")

    async def wait_connected(self, timeout: float) -> bool:
        try:
            await asyncio.wait_for(self._connected.wait(), timeout)
        except TimeoutError:
            return False
        return True

    async def _run_hooks(self) -> None:
        if self.client is None:
            return
        for hook in self._hooks:
            await self._run_hook(hook, self.client)  # a hook failing must not kill the connection

    async def _connect_forever(self) -> None:
        delay = 0.2

        async def error_cb(exc: Exception) -> None:
            log.debug("nats_error", error=repr(exc))

        async def disconnected_cb() -> None:
            log.warning("nats_disconnected")

        async def reconnected_cb() -> None:
            log.info("nats_reconnected")
            await self._run_hooks()

        while True:
            try:
                self.client = await nats.connect(
                    self.url,
                    name=self.name,
                    allow_reconnect=True,
                    max_reconnect_attempts=-1,
                    reconnect_time_wait=0.5,
                    connect_timeout=2,
                    ping_interval=5,
                    max_outstanding_pings=2,
                    error_cb=error_cb,
                    disconnected_cb=disconnected_cb,
                    reconnected_cb=reconnected_cb,
                )
            except Exception as exc:
                log.warning("nats_connect_failed", error=repr(exc), retry_in=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            log.info("nats_connected")
            self._connected.set()
            await self._run_hooks()
            return

    async def ping(self, timeout: float = 1.0) -> None:
        if self.client is None or not self.client.is_connected:
            raise ConnectionError("not connected")
        await asyncio.wait_for(self.client.flush(timeout=max(1, int(timeout))), timeout)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        if self.client is not None and not self.client.is_closed:
            # Not drain(): it waits for every buffered consumer message and can hold shutdown for its full timeout.
            # Nothing depends on it (the relay marks events sent only after their ack; consumers ack explicitly).
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.client.flush(timeout=1), 1.5)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.client.close(), 2)
