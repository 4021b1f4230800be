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

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import structlog

from ..followers import Follower

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


class ClockFollower(Follower):
    """Keeps a `TestClocks` registry in step with the database (channel `smartpos_test_clock`)."""

    def __init__(self, dsn: str, clocks: TestClocks, on_change: Callable[[str], None] | None = None) -> None:
        super().__init__(dsn, CHANNEL, clocks, on_change)
        self.clocks = clocks


def clock_body(row: Mapping[str, Any]) -> dict[str, Any]:
    return {
        key: row[key] for key in ("id", "merchant_id", "frozen_time", "status", "version", "created_at", "updated_at")
    }


def utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC)
