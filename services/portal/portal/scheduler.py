"""The portal's scheduler process type: `python -m portal.scheduler` (Procfile `scheduler`).

Every `SCHEDULER_INTERVAL_SECONDS` it makes one pass of the overnight run (portal/closeout/overnight.py) over
every store whose business day has ended, then applies the configuration change requests that are due
(portal/config/changes.py). Run as many as you like: stores are claimed with advisory locks and
every day is sealed once.

    python -m portal.scheduler                 # forever (SIGTERM/SIGINT stop it after the current store)
    python -m portal.scheduler --once          # one pass, then a JSON summary on stdout
    python -m portal.scheduler --once --dry-run  # the reports a pass would seal, as JSON lines; writes nothing

In the sandbox (`SMARTPOS_ENV` other than production) a merchant with a test clock is run at the clock's time, and
the scheduler LISTENs for clocks that advance: it runs that merchant's overnight run at once, then marks the
clock `ready` (portal/sandbox/clocks.py).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

import redis.asyncio as aioredis
import structlog
from prometheus_client import Counter, start_http_server
from pydantic import Field
from pydantic_settings import SettingsConfigDict

from smartpos_shared.cache import VersionedCache
from smartpos_shared.db import create_engine
from smartpos_shared.logging import configure_logging
from smartpos_shared.pg import CountedStatements, create_pool
from smartpos_shared.settings import Environment

from .closeout.overnight import Overnight
from .config import changes
from .context import PortalServices
from .pgw.gateway import gateway_for
from .sandbox.clocks import ClockFollower, TestClocks
from .settings import PortalSettings

log = structlog.get_logger("smartpos.scheduler")
STATEMENTS = Counter("smartpos_scheduler_db_statements_total", "Statements the scheduler sent (asyncpg)")


class SchedulerSettings(PortalSettings):
    """The portal's settings (database, Redis, gateway, grace) plus the scheduler's own (`SCHEDULER_…`)."""

    model_config = SettingsConfigDict(env_prefix="PORTAL_", extra="ignore")

    interval_seconds: float = Field(
        default=30.0, validation_alias="SCHEDULER_INTERVAL_SECONDS", description="pause between passes"
    )
    concurrency: int = Field(default=4, validation_alias="SCHEDULER_CONCURRENCY", description="stores at once")
    pending_max_age_hours: float = Field(
        default=24.0,
        validation_alias="SCHEDULER_PENDING_MAX_AGE_HOURS",
        description="a card/qr payment still pending after this long is expired by the overnight run",
    )
    metrics_port: int = Field(default=0, validation_alias="SCHEDULER_METRICS_PORT", description="0: no /metrics")


@asynccontextmanager
async def overnight(settings: SchedulerSettings) -> AsyncIterator[Overnight]:
    pool = await create_pool(settings.database_url, min_size=0, max_size=settings.concurrency + 1)
    engine = create_engine(settings.database_url, pool_size=settings.concurrency + 1, max_overflow=0)
    redis = aioredis.Redis.from_url(
        settings.redis_url, socket_timeout=1.0, socket_connect_timeout=1.0, decode_responses=False
    )
    gateway = gateway_for(settings, redis)
    services = PortalServices(
        settings=settings,
        pool=pool,
        cache=VersionedCache(redis),
        gateway=gateway,
        statements=CountedStatements(STATEMENTS),
        clock=time.time,
        wake_relay=None,  # the write statements NOTIFY the relays
    )
    try:
        yield Overnight(
            services,
            engine,
            grace=timedelta(seconds=settings.closeout_grace_seconds),
            pending_max_age=timedelta(hours=settings.pending_max_age_hours),
            concurrency=settings.concurrency,
            test_clocks=settings.env is not Environment.production,
        )
    finally:
        await gateway.close()
        await redis.aclose()  # type: ignore[attr-defined]  # redis 5 (types-redis describes 4)
        await engine.dispose()
        await pool.close()


async def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="portal.scheduler", description=__doc__.splitlines()[0])
    parser.add_argument("--once", action="store_true", help="one pass, then exit")
    parser.add_argument("--dry-run", action="store_true", help="print what a pass would seal; write nothing")
    parser.add_argument("--merchant", help="only this merchant's stores (mer_…)")
    args = parser.parse_args(argv)
    settings = SchedulerSettings()
    # --once / --dry-run print their answer on stdout: the logs go to stderr then.
    one_pass = args.once or args.dry_run
    configure_logging("portal-scheduler", settings.log_level, stream=sys.stderr if one_pass else None)
    if settings.metrics_port and not args.once:
        start_http_server(settings.metrics_port, addr="127.0.0.1")
    async with overnight(settings) as run:
        if one_pass:
            result = await run.run(dry_run=args.dry_run, merchant_id=args.merchant)
            if not args.dry_run:
                await changes.apply_due(run.sessionmaker, run.now())
            if args.dry_run:
                for report in result.reports:
                    print(json.dumps(report, sort_keys=True))
            else:
                print(json.dumps(result.summary()))
            return 1 if result.failed else 0
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        log.info("scheduler_started", interval_seconds=settings.interval_seconds)
        clocks = await follow_clocks(settings, run, args.merchant) if run.test_clocks else None
        try:
            while not stop.is_set():
                try:
                    await run.run(merchant_id=args.merchant)
                    await run.settle_clocks(args.merchant)
                    await changes.apply_due(run.sessionmaker, run.now())
                except Exception as exc:  # a pass that failed as a whole (database down): the next one retries
                    log.error("overnight_pass_failed", error=repr(exc))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), settings.interval_seconds)
        finally:
            if clocks is not None:
                await clocks.stop()
        log.info("scheduler_stopped")
    return 0


class ClockRuns:
    """The sandbox: a merchant's overnight run as soon as its test clock moves (beside the regular passes)."""

    def __init__(self, run: Overnight, follower: ClockFollower, queue: asyncio.Queue[str]) -> None:
        self.run, self.follower, self.queue = run, follower, queue
        self.task = asyncio.create_task(self._work(), name="test-clock-runs")

    async def _work(self) -> None:
        while True:
            merchant_id = await self.queue.get()
            try:
                for _ in range(20):  # a store another scheduler holds is sealed by that one: look again shortly
                    await self.run.run(merchant_id=merchant_id)
                    if merchant_id in await self.run.settle_clocks(merchant_id):
                        break
                    if not any(c[1] == "advancing" for m, c in (await self.run.clocks()).items() if m == merchant_id):
                        break
                    await asyncio.sleep(0.5)
            except Exception as exc:
                log.error("test_clock_run_failed", merchant_id=merchant_id, error=repr(exc))

    async def stop(self) -> None:
        await self.follower.stop()
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task


async def follow_clocks(settings: SchedulerSettings, run: Overnight, only: str | None) -> ClockRuns:
    queue: asyncio.Queue[str] = asyncio.Queue()

    def changed(merchant_id: str) -> None:
        if only is None or merchant_id == only:
            queue.put_nowait(merchant_id)

    follower = ClockFollower(settings.database_url, TestClocks(), on_change=changed)
    await follower.start()
    return ClockRuns(run, follower, queue)


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1:])))
