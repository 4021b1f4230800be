"""The overnight run: for each store whose business day has ended, in this order —

1. expire the store's payments pending longer than `SCHEDULER_PENDING_MAX_AGE_HOURS` (the checkout aggregate's
   own transition; the gateway is told to cancel them);
2. close every ended, unsealed business day, oldest first (a sealed Z report each, with its `closeout.created`).

Safe with several schedulers at once: each store-day is one transaction that first takes a transaction-level
advisory lock on the store (`pg_try_advisory_xact_lock`; a store another scheduler holds is skipped, it does the
work) and the store's row lock, and the unique (store_id, business_date) refuses a second report whatever
happens. Killed half-way, a run leaves whole days sealed or not at all; the next run carries on from there and ends
where an uninterrupted run would have. A dry run computes the same reports and writes nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from time import perf_counter
from typing import Any

import structlog
from prometheus_client import Counter, Histogram
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from smartpos_shared.db import Transaction, make_sessionmaker
from smartpos_shared.events import certification_run
from smartpos_shared.pg import Db

from ..checkout import service as checkout
from ..context import PortalServices, RequestContext
from ..credit import programmes
from ..tenancy import Tenant
from . import reconciliation, zreport
from .business_day import ONE_DAY, BusinessDay

log = structlog.get_logger("smartpos.overnight")

STORES = Counter("smartpos_overnight_stores_total", "Stores the overnight run visited, by outcome", ["outcome"])
REPORTS = Counter("smartpos_overnight_reports_total", "Z reports the overnight run sealed")
RECONCILED = Counter(
    "smartpos_overnight_reconciliations_total", "Sealed days reconciled with the gateway, by status", ["status"]
)
EXPIRED = Counter("smartpos_overnight_expired_payments_total", "Payments expired after pending too long")
RUN_SECONDS = Histogram(
    "smartpos_overnight_run_seconds", "Duration of one pass over every due store", buckets=(0.1, 1, 5, 15, 60, 300, 900)
)

# Every store with the end of its next unsealed day (computed in Python: one rule for business days).
STORES_WITH_LAST_REPORT = """
SELECT /* tenant-resolution */ s.id, s.merchant_id, s.timezone, s.day_closes_at, s.created_at,
       last.business_date AS last_date, last.window_end AS last_end,
       (last.business_date IS NOT NULL AND NOT EXISTS (
           SELECT 1 FROM reconciliations r
           WHERE r.store_id = s.id AND r.merchant_id = s.merchant_id AND r.business_date = last.business_date
       )) AS unreconciled
FROM stores s
LEFT JOIN LATERAL (
    SELECT z.business_date, z.window_end FROM z_reports z
    WHERE z.store_id = s.id AND z.merchant_id = s.merchant_id ORDER BY z.number DESC LIMIT 1
) last ON true
WHERE (CAST(:merchant_id AS text) IS NULL OR s.merchant_id = :merchant_id)
ORDER BY s.id"""
STALE_PENDING = """
SELECT id FROM payments
WHERE merchant_id = :merchant_id AND store_id = :store_id AND status = 'pending' AND created_at < :cutoff
ORDER BY created_at LIMIT 500"""
UNRECONCILED = """
SELECT z.business_date, z.window_start, z.window_end FROM z_reports z
WHERE z.merchant_id = :merchant_id AND z.store_id = :store_id
  AND NOT EXISTS (SELECT 1 FROM reconciliations r WHERE r.store_id = z.store_id AND r.merchant_id = z.merchant_id
                  AND r.business_date = z.business_date)
ORDER BY z.number DESC LIMIT 7"""
TRY_LOCK = "SELECT pg_try_advisory_xact_lock(hashtextextended('overnight:' || :store_id, 0))"
# The sandbox: merchants whose business time is a test clock's (portal/sandbox/clocks.py).
CLOCKS = "SELECT merchant_id, frozen_time, status, certification_run FROM test_clocks"
CLOCK_READY = """
UPDATE test_clocks SET status = 'ready', version = version + 1, updated_at = now()
WHERE merchant_id = :merchant_id AND status = 'advancing' AND frozen_time = :frozen_time"""


@dataclass(frozen=True, slots=True)
class DueStore:
    store_id: str
    merchant_id: str
    next_date: date
    next_end: datetime
    closes_at: time
    now: datetime  # the store's business time for this pass (its merchant's test clock's, in the sandbox)
    seal_due: bool = True  # a day is over and unsealed (else only a reconciliation is left)
    # The certification run that advanced the merchant's test clock: the events of this store's run carry it.
    certification_run: str | None = None


@dataclass(slots=True)
class RunResult:
    stores_due: int = 0
    sealed: int = 0
    # Only a dry run keeps the reports (to print them): a real pass over 10,000 stores keeps counts, not
    # 10,000 documents the garbage collector would walk again and again.
    reports: list[dict[str, Any]] = field(default_factory=list)
    skipped_locked: int = 0
    failed: int = 0
    expired_payments: int = 0
    reconciliations: int = 0
    differences: int = 0
    credit_entries: int = 0
    seconds: float = 0.0

    def summary(self) -> dict[str, Any]:
        return {
            "stores_due": self.stores_due,
            "reports": self.sealed,
            "skipped_locked": self.skipped_locked,
            "failed": self.failed,
            "expired_payments": self.expired_payments,
            "reconciliations": self.reconciliations,
            "credit_entries": self.credit_entries,
            "reconciliations_with_differences": self.differences,
            "seconds": round(self.seconds, 3),
        }


def _next_day(report: dict[str, Any]) -> date:
    return date.fromisoformat(report["business_date"]) + ONE_DAY


def next_unsealed(row: Any) -> tuple[date, datetime]:
    business = BusinessDay(row.timezone, row.day_closes_at)
    day = business.date_of(row.created_at) if row.last_date is None else row.last_date + ONE_DAY
    return day, business.window(day)[1]


class Overnight:
    def __init__(
        self,
        services: PortalServices,
        engine: AsyncEngine,
        *,
        grace: timedelta,
        pending_max_age: timedelta,
        concurrency: int = 4,
        clock: Callable[[], float] | None = None,
        test_clocks: bool = False,
    ) -> None:
        self.services = services
        self.sessionmaker = make_sessionmaker(engine)
        self.grace = grace
        self.pending_max_age = pending_max_age
        self.concurrency = concurrency
        self.clock = clock or services.clock
        self.test_clocks = test_clocks
        self.clock_runs: dict[str, str | None] = {}  # merchant -> the certification run that advanced its clock

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.clock(), UTC)

    async def clocks(self) -> dict[str, tuple[datetime, str]]:
        """The sandbox's test clocks: merchant -> (frozen time, status). None outside the sandbox."""
        if not self.test_clocks:
            return {}
        async with self.sessionmaker() as session:
            rows = (await session.execute(text(CLOCKS))).all()
            self.clock_runs = {row.merchant_id: row.certification_run for row in rows}
            return {row.merchant_id: (row.frozen_time, row.status) for row in rows}

    async def due_stores(
        self, now: datetime, merchant_id: str | None = None, clocks: dict[str, tuple[datetime, str]] | None = None
    ) -> list[DueStore]:
        clocks = clocks or {}
        async with self.sessionmaker() as session:
            rows = await session.execute(text(STORES_WITH_LAST_REPORT), {"merchant_id": merchant_id})
            due = []
            for row in rows:
                day, end = next_unsealed(row)
                store_now = clocks[row.merchant_id][0] if row.merchant_id in clocks else now
                seal_due = end + self.grace <= store_now
                if seal_due or row.unreconciled:
                    run = self.clock_runs.get(row.merchant_id) if row.merchant_id in clocks else None
                    due.append(DueStore(row.id, row.merchant_id, day, end, row.day_closes_at, store_now, seal_due, run))
            return due

    async def settle_clocks(self, merchant_id: str | None = None) -> list[str]:
        """Mark `ready` each advancing test clock (of `merchant_id`, or all) whose merchant has no day left to seal
        at the clock's time; the merchants marked."""
        clocks = await self.clocks()
        settled = []
        for merchant, (frozen, clock_status) in clocks.items():
            if clock_status != "advancing" or (merchant_id is not None and merchant != merchant_id):
                continue
            due = await self.due_stores(frozen, merchant, {merchant: (frozen, clock_status)})
            if any(store.seal_due for store in due):
                continue
            async with self.sessionmaker() as session, session.begin():
                await session.execute(text(CLOCK_READY), {"merchant_id": merchant, "frozen_time": frozen})
            settled.append(merchant)
            log.info("test_clock_ready", merchant_id=merchant, frozen_time=frozen.isoformat())
        return settled

    async def run(self, *, dry_run: bool = False, merchant_id: str | None = None) -> RunResult:
        started = perf_counter()
        now = self.now()
        result = RunResult()
        due = await self.due_stores(now, merchant_id, await self.clocks())
        result.stores_due = len(due)
        log.info("overnight_started", stores_due=len(due), dry_run=dry_run)
        queue: asyncio.Queue[DueStore] = asyncio.Queue()
        for store in due:
            queue.put_nowait(store)

        async def worker() -> None:
            while not queue.empty():
                store = queue.get_nowait()
                tagged = certification_run.set(store.certification_run)  # this worker task's context only
                try:
                    await self.run_store(store, store.now, result, dry_run=dry_run)
                except Exception as exc:  # one store's failure never stops the others; the next pass retries it
                    result.failed += 1
                    STORES.labels("failed").inc()
                    log.error("overnight_store_failed", store_id=store.store_id, error=repr(exc))
                finally:
                    certification_run.reset(tagged)

        await asyncio.gather(*(worker() for _ in range(max(1, self.concurrency))))
        result.seconds = perf_counter() - started
        if not dry_run:
            RUN_SECONDS.observe(result.seconds)
        log.info("overnight_finished", dry_run=dry_run, **result.summary())
        return result

    async def run_store(self, store: DueStore, now: datetime, result: RunResult, *, dry_run: bool) -> None:
        if not dry_run:
            result.expired_payments += await self.expire_stale(store, now)
        if dry_run:
            # What the run would seal, in one transaction that is rolled back (every due day, as the real run).
            async with self.sessionmaker() as session:
                try:
                    reports = await self._close_due_days(session, store, now)
                    result.reports.extend(reports)
                    result.sealed += sum(1 for r in reports if "credit_entry" not in r)
                    result.credit_entries += sum(1 for r in reports if "credit_entry" in r)
                finally:
                    await session.rollback()
            return
        while True:
            async with self.sessionmaker() as session:
                transaction = Transaction(session)
                async with session.begin():
                    if not (await session.execute(text(TRY_LOCK), {"store_id": store.store_id})).scalar_one():
                        result.skipped_locked += 1
                        STORES.labels("locked_elsewhere").inc()
                        return
                    sealed = await self._close_next(session, store, now)
                    if sealed is None:
                        STORES.labels("done").inc()
                        break
                    zreport.emit_sealed(transaction, sealed)
                    # The programme periods the next day starts: in the day's own transaction.
                    entries = await programmes.apply_for_new_day(
                        session, store.merchant_id, store.store_id, _next_day(sealed), now
                    )
                    programmes.emit_entries(transaction, store.merchant_id, store.store_id, entries)
                    await session.execute(text("SELECT pg_notify('smartpos_outbox', '')"))
            result.credit_entries += len(entries)
            if self.services.wake_relay is not None:
                self.services.wake_relay()
            REPORTS.inc()
            result.sealed += 1
            log.info(
                "overnight_day_sealed",
                store_id=store.store_id,
                business_date=sealed["business_date"],
                number=sealed["number"],
                net_sales=sealed["net_sales"],
            )
            next_end = BusinessDay(sealed["timezone"], store.closes_at).window(
                date.fromisoformat(sealed["business_date"]) + ONE_DAY
            )[1]
            if next_end + self.grace > now:  # the next day is not over: no need to ask under the lock
                STORES.labels("done").inc()
                break
        await self.reconcile_store(store, now, result)

    async def reconcile_store(self, store: DueStore, now: datetime, result: RunResult) -> None:
        """Match each sealed day not reconciled yet (the latest seven) with the gateway's settlement report."""
        async with self.sessionmaker() as session:
            days = (
                await session.execute(
                    text(UNRECONCILED), {"merchant_id": store.merchant_id, "store_id": store.store_id}
                )
            ).all()
            for day, start, end in days:
                try:
                    outcome = await reconciliation.reconcile(
                        session, self.services.gateway, store.merchant_id, store.store_id, day, start, end
                    )
                except Exception as exc:  # no report from the gateway now: the next pass tries again
                    log.warning("overnight_reconciliation_failed", store_id=store.store_id, error=repr(exc))
                    return
                await reconciliation.save(session, store.merchant_id, outcome, now)
                await session.commit()
                result.reconciliations += 1
                RECONCILED.labels(outcome["status"]).inc()
                if outcome["status"] != "balanced":
                    result.differences += 1
                    log.warning(
                        "overnight_settlement_differences",
                        store_id=store.store_id,
                        business_date=outcome["business_date"],
                        missing_at_gateway=len(outcome["missing_at_gateway"]),
                        missing_in_platform=len(outcome["missing_in_platform"]),
                        amount_mismatch=len(outcome["amount_mismatch"]),
                    )

    async def _close_next(self, session: AsyncSession, store: DueStore, now: datetime) -> dict[str, Any] | None:
        """Seal the store's next day if it is over; None when nothing is left to close."""
        try:
            sealed = await zreport.close_day(session, store.merchant_id, store.store_id, None, now, grace=self.grace)
        except zreport.DayNotOver:
            return None
        return sealed.report

    async def _close_due_days(self, session: AsyncSession, store: DueStore, now: datetime) -> list[dict[str, Any]]:
        """Every due day, each chained to the one before, with the programme entries each new day starts (marked
        `credit_entry`); the caller rolls it all back: a dry run."""
        reports: list[dict[str, Any]] = []
        while True:
            try:
                sealed = await zreport.close_day(
                    session, store.merchant_id, store.store_id, None, now, grace=self.grace, dry_run=False
                )
            except zreport.DayNotOver:
                return reports
            reports.append(sealed.report)
            reports.extend(
                await programmes.apply_for_new_day(
                    session, store.merchant_id, store.store_id, _next_day(sealed.report), now
                )
            )
            if len(reports) > 366 * 5:  # a store years behind: the rest on the next pass
                return reports

    async def expire_stale(self, store: DueStore, now: datetime) -> int:
        cutoff = now - self.pending_max_age
        async with self.sessionmaker() as session:
            ids = [
                row.id
                for row in await session.execute(
                    text(STALE_PENDING),
                    {"merchant_id": store.merchant_id, "store_id": store.store_id, "cutoff": cutoff},
                )
            ]
        expired = 0
        for payment_id in ids:
            ctx = RequestContext(self.services, Db(self.services.pool, self.services.statements), None)
            try:
                if await checkout.expire_payment(ctx, Tenant(store.merchant_id), payment_id):
                    expired += 1
                    EXPIRED.inc()
            finally:
                await ctx.db.release()
        if expired:
            log.info("overnight_payments_expired", store_id=store.store_id, count=expired)
        return expired


__all__ = ["DueStore", "Overnight", "RunResult"]
