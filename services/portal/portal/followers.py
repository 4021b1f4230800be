"""Per-process registries kept in step with the database: a registry loads everything once, then a LISTEN on its
channel (the writer NOTIFYs the merchant id, delivered at commit) refreshes one merchant at a time. After a lost
connection everything is loaded again (a notification may have been missed). Used for the sandbox's test clocks
and for the payment methods a merchant's configuration enables."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any, Protocol

import asyncpg
import structlog

log = structlog.get_logger("smartpos.followers")


class Registry(Protocol):
    async def load(self, conn: Any) -> None: ...

    async def refresh(self, conn: Any, merchant_id: str) -> None: ...


class Follower:
    def __init__(
        self, dsn: str, channel: str, registry: Registry, on_change: Callable[[str], None] | None = None
    ) -> None:
        self.dsn = dsn.replace("postgresql+asyncpg://", "postgresql://", 1)
        self.channel = channel
        self.registry = registry
        self.on_change = on_change
        self.ready = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self, wait: float = 5.0) -> None:
        self._task = asyncio.create_task(self._follow(), name=f"follow-{self.channel}")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.ready.wait(), wait)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _follow(self) -> None:
        while True:
            try:
                conn = await asyncpg.connect(self.dsn)
                try:
                    lost = asyncio.Event()
                    changed: asyncio.Queue[str] = asyncio.Queue()
                    conn.add_termination_listener(lambda *_, lost=lost: lost.set())
                    await conn.add_listener(self.channel, lambda *args, q=changed: q.put_nowait(str(args[3])))
                    await self.registry.load(conn)
                    self.ready.set()
                    while not lost.is_set():
                        merchant_id = await _next(changed, lost)
                        if merchant_id is None:
                            break
                        await self.registry.refresh(conn, merchant_id)
                        if self.on_change is not None:
                            self.on_change(merchant_id)
                finally:
                    with contextlib.suppress(Exception):
                        await conn.close()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("follow_failed", channel=self.channel, error=repr(exc))
                await asyncio.sleep(1)


async def _next(changed: asyncio.Queue[str], lost: asyncio.Event) -> str | None:
    """The next merchant whose row changed, or None once the connection is lost."""
    get = asyncio.ensure_future(changed.get())
    gone = asyncio.ensure_future(lost.wait())
    done, pending = await asyncio.wait({get, gone}, return_when=asyncio.FIRST_COMPLETED)
    for task in pending:
        task.cancel()
    return get.result() if get in done else None
