"""Test clocks: a merchant's business time in the sandbox, frozen until the partner advances it.

While a merchant has a clock, everything the portal stamps with business time for that merchant (orders, bills,
payments, refunds, shifts, credit entries, and so its business dates) uses the clock's `frozen_time`; the
overnight run (the scheduler) treats the merchant's stores as if it were that time, so advancing a clock by a
day seals the day and applies the credit programmes within seconds. Access tokens and webhook signature
timestamps keep real time, and other merchants are unaffected.

How every process learns a clock: the row is the truth; a change NOTIFYs `smartpos_test_clock` (delivered at
commit) with the merchant id, and every portal process keeps its `TestClocks` registry up to date from it (the
process that made the change updates its own at once). The scheduler LISTENs too and runs the merchant's
overnight run when a clock advances, then marks the clock `ready`.

Production has none of it: the endpoints are not mounted (404) and no registry exists.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import asyncpg
import structlog

log = structlog.get_logger("smartpos.sandbox.clocks")

CHANNEL = "smartpos_test_clock"
COLUMNS = "id, merchant_id, frozen_time, status, version, created_at, updated_at"
ALL = "SELECT merchant_id, frozen_time FROM test_clocks"  # sandbox-wide: every clock, for the registry
OF_MERCHANT = "SELECT frozen_time FROM test_clocks WHERE merchant_id = $1"
NOTIFY = "SELECT pg_notify('smartpos_test_clock', $1)"


class TestClocks:
    """Business time per merchant for the merchants that have a clock (a process-local view of `test_clocks`)."""

    __test__ = False  # not a pytest test class

    def __init__(self) -> None:
        self.frozen: dict[str, float] = {}

    def time_of(self, merchant_id: str) -> float | None:
        return self.frozen.get(merchant_id)

    def set(self, merchant_id: str, frozen_time: datetime | None) -> None:
        if frozen_time is None:
            self.frozen.pop(merchant_id, None)
        else:
            self.frozen[merchant_id] = frozen_time.timestamp()

    async def load(self, conn: Any) -> None:
        self.frozen = {row["merchant_id"]: row["frozen_time"].timestamp() for row in await conn.fetch(ALL)}

    async def refresh(self, conn: Any, merchant_id: str) -> None:
        self.set(merchant_id, await conn.fetchval(OF_MERCHANT, merchant_id))


class ClockFollower:
    """Keeps a `TestClocks` registry in step with the database: loads every clock, then LISTENs for changes
    (reconnecting, and reloading everything after a reconnect: a notification may have been missed)."""

    def __init__(self, dsn: str, clocks: TestClocks, on_change: Callable[[str], None] | None = None) -> None:
        self.dsn = dsn.replace("postgresql+asyncpg://", "postgresql://", 1)
        self.clocks = clocks
        self.on_change = on_change
        self.ready = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self, wait: float = 5.0) -> None:
        self._task = asyncio.create_task(self._follow(), name="test-clock-follower")
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
                    await conn.add_listener(CHANNEL, lambda *args, q=changed: q.put_nowait(str(args[3])))
                    await self.clocks.load(conn)
                    self.ready.set()
                    while not lost.is_set():
                        merchant_id = await _next(changed, lost)
                        if merchant_id is None:
                            break
                        await self.clocks.refresh(conn, merchant_id)
                        if self.on_change is not None:
                            self.on_change(merchant_id)
                finally:
                    with contextlib.suppress(Exception):
                        await conn.close()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("test_clock_follow_failed", error=repr(exc))
                await asyncio.sleep(1)


async def _next(changed: asyncio.Queue[str], lost: asyncio.Event) -> str | None:
    """The next merchant whose clock changed, or None once the connection is lost."""
    get = asyncio.ensure_future(changed.get())
    gone = asyncio.ensure_future(lost.wait())
    done, pending = await asyncio.wait({get, gone}, return_when=asyncio.FIRST_COMPLETED)
    for task in pending:
        task.cancel()
    return get.result() if get in done else None


def clock_body(row: Mapping[str, Any]) -> dict[str, Any]:
    return {
        key: row[key] for key in ("id", "merchant_id", "frozen_time", "status", "version", "created_at", "updated_at")
    }


def utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC)
