"""Z reports: a store's business day, counted and sealed.

A report counts what happened in its window: orders completed, payments succeeded (gross, by tender), refunds
succeeded, shifts closed; and lists what it carried over (payments still pending, shifts still open — they are
counted on the day they settle or close). `number` goes up by one per store with no gap; `hash` is SHA-256 over
the report's canonical JSON (sorted keys, no whitespace, UTF-8; integers and strings only), which includes
`previous_hash`, the hash of the store's previous report (64 zeros for the first). A later report's window starts
exactly where the previous one ended, so the chain covers the store's time without gap or overlap.

The database keeps them sealed (a trigger refuses UPDATE, DELETE and TRUNCATE on z_reports); `verify` recomputes
every hash and link, so a row changed by someone who disabled the trigger is found.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from smartpos_shared.db import Transaction
from smartpos_shared.errors import Conflict, NotFound, Unprocessable
from smartpos_shared.ids import new_id

from ..events import emit
from .business_day import ONE_DAY, BusinessDay

GENESIS_HASH = "0" * 64


def instant(value: datetime) -> str:
    """Timestamps in the canonical JSON: UTC, microseconds (what PostgreSQL keeps), `Z`."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def canonical(document: dict[str, Any]) -> bytes:
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def seal(document: dict[str, Any]) -> str:
    """The hash of a report: over everything in it but the hash itself."""
    return hashlib.sha256(canonical({k: v for k, v in document.items() if k != "hash"})).hexdigest()


@dataclass(frozen=True, slots=True)
class StoreDay:
    """What closing needs to know about a store (read under its row lock)."""

    store_id: str
    merchant_id: str
    currency: str
    business_day: BusinessDay
    created_at: datetime


# FOR NO KEY UPDATE: closes of one store are serialized, while new orders (whose foreign key takes FOR KEY SHARE
# on the store row) go on.
LOCK_STORE = """
SELECT s.id, s.merchant_id, s.timezone, s.day_closes_at, s.created_at, m.currency
FROM stores s JOIN merchants m ON m.id = s.merchant_id
WHERE s.id = :store_id AND s.merchant_id = :merchant_id
FOR NO KEY UPDATE OF s"""
LAST_REPORT = """
SELECT number, business_date, window_end, hash FROM z_reports
WHERE store_id = :store_id AND merchant_id = :merchant_id ORDER BY number DESC LIMIT 1"""
REPORT_FOR_DATE = """
SELECT id FROM z_reports WHERE store_id = :store_id AND merchant_id = :merchant_id AND business_date = :day"""

PAYMENTS = """
SELECT method, count(*) AS n, coalesce(sum(amount), 0) AS amount FROM payments
WHERE merchant_id = :merchant_id AND store_id = :store_id AND succeeded_at >= :start AND succeeded_at < :end
GROUP BY method"""
REFUNDS = """
SELECT r.method, count(*) AS n, coalesce(sum(r.amount), 0) AS amount FROM refunds r
WHERE r.merchant_id = :merchant_id AND r.store_id = :store_id AND r.status = 'succeeded'
  AND r.updated_at >= :start AND r.updated_at < :end
  AND EXISTS (SELECT 1 FROM payments p WHERE p.id = r.payment_id AND p.merchant_id = r.merchant_id
              AND p.status = 'succeeded')
GROUP BY r.method"""
ORDERS = """
SELECT count(*) FROM orders
WHERE merchant_id = :merchant_id AND store_id = :store_id AND completed_at >= :start AND completed_at < :end"""
SHIFTS = """
SELECT id, opened_at, closed_at, opening_float, cash_sales, cash_refunds, paid_in, paid_out, expected_cash,
       counted_cash, difference
FROM shifts
WHERE merchant_id = :merchant_id AND store_id = :store_id AND status = 'closed'
  AND closed_at >= :start AND closed_at < :end
ORDER BY closed_at, id"""
PENDING = """
SELECT count(*) AS n, coalesce(sum(amount), 0) AS amount FROM payments
WHERE merchant_id = :merchant_id AND store_id = :store_id AND status = 'pending' AND created_at < :end"""
OPEN_SHIFTS = """
SELECT id FROM shifts
WHERE merchant_id = :merchant_id AND store_id = :store_id AND status = 'open' AND opened_at < :end ORDER BY id"""
INSERT = """
INSERT INTO z_reports (id, merchant_id, store_id, number, business_date, timezone, window_start, window_end,
                       currency, orders, gross_sales, refunds, net_sales, by_method, shifts, carried_over,
                       previous_hash, hash, created_at)
VALUES (:id, :merchant_id, :store_id, :number, :business_date, :timezone, :window_start, :window_end, :currency,
        :orders, :gross_sales, :refunds, :net_sales, CAST(:by_method AS jsonb), CAST(:shifts AS jsonb),
        CAST(:carried_over AS jsonb), :previous_hash, :hash, :created_at)"""
COLUMNS = (
    "id, merchant_id, store_id, number, business_date, timezone, window_start, window_end, currency, orders,"
    " gross_sales, refunds, net_sales, by_method, shifts, carried_over, previous_hash, hash, created_at"
)
_SELECT = f"SELECT {COLUMNS} FROM z_reports WHERE merchant_id = :merchant_id"  # noqa: S608  (constants only)
LIST = (
    _SELECT
    + " AND store_id = :store_id AND (CAST(:before AS text) IS NULL OR id < :before) ORDER BY id DESC LIMIT :limit"
)
GET = _SELECT + " AND id = :id"
CHAIN = _SELECT + " AND store_id = :store_id ORDER BY number"


async def lock_store(session: AsyncSession, merchant_id: str, store_id: str) -> StoreDay | None:
    row = (await session.execute(text(LOCK_STORE), {"store_id": store_id, "merchant_id": merchant_id})).one_or_none()
    if row is None:
        return None
    day = BusinessDay(row.timezone, row.day_closes_at)
    return StoreDay(row.id, row.merchant_id, row.currency, day, row.created_at)


@dataclass(frozen=True, slots=True)
class NextClose:
    business_date: date
    number: int
    window_start: datetime
    window_end: datetime
    previous_hash: str


async def next_close(session: AsyncSession, store: StoreDay) -> NextClose:
    """The store's next day to seal: the day after its last report, or (none yet) the day it opened."""
    last = (
        await session.execute(text(LAST_REPORT), {"store_id": store.store_id, "merchant_id": store.merchant_id})
    ).one_or_none()
    if last is None:
        day = store.business_day.date_of(store.created_at)
        start, end = store.business_day.window(day)
        return NextClose(day, 1, start, end, GENESIS_HASH)
    day = last.business_date + ONE_DAY
    # The window starts where the previous one ended, whatever the store's timezone or closing time became since.
    return NextClose(day, last.number + 1, last.window_end, store.business_day.window(day)[1], last.hash)


async def compute(session: AsyncSession, store: StoreDay, plan: NextClose, now: datetime) -> dict[str, Any]:
    """The report document for `plan` (without its hash), read in the caller's transaction."""
    scope = {
        "merchant_id": store.merchant_id,
        "store_id": store.store_id,
        "start": plan.window_start,
        "end": plan.window_end,
    }
    by_method: dict[str, dict[str, int]] = {}

    def method(name: str) -> dict[str, int]:
        return by_method.setdefault(name, {"payments": 0, "gross": 0, "refunds": 0, "refunded": 0, "net": 0})

    for row in await session.execute(text(PAYMENTS), scope):
        entry = method(row.method)
        entry["payments"], entry["gross"] = int(row.n), int(row.amount)
    for row in await session.execute(text(REFUNDS), scope):
        entry = method(row.method)
        entry["refunds"], entry["refunded"] = int(row.n), int(row.amount)
    for entry in by_method.values():
        entry["net"] = entry["gross"] - entry["refunded"]
    gross = sum(entry["gross"] for entry in by_method.values())
    refunds = sum(entry["refunded"] for entry in by_method.values())
    orders = int((await session.execute(text(ORDERS), scope)).scalar_one())
    shifts = [
        {
            "id": row.id,
            "opened_at": instant(row.opened_at),
            "closed_at": instant(row.closed_at),
            "opening_float": row.opening_float,
            "cash_sales": row.cash_sales,
            "cash_refunds": row.cash_refunds,
            "paid_in": row.paid_in,
            "paid_out": row.paid_out,
            "expected_cash": row.expected_cash,
            "counted_cash": row.counted_cash,
            "difference": row.difference,
        }
        for row in await session.execute(text(SHIFTS), scope)
    ]
    pending = (await session.execute(text(PENDING), scope)).one()
    open_shifts = [row.id for row in await session.execute(text(OPEN_SHIFTS), scope)]
    return {
        "id": new_id("zrp"),
        "merchant_id": store.merchant_id,
        "store_id": store.store_id,
        "number": plan.number,
        "business_date": plan.business_date.isoformat(),
        "timezone": store.business_day.timezone,
        "window_start": instant(plan.window_start),
        "window_end": instant(plan.window_end),
        "currency": store.currency,
        "orders": orders,
        "gross_sales": gross,
        "refunds": refunds,
        "net_sales": gross - refunds,
        "by_method": dict(sorted(by_method.items())),
        "shifts": shifts,
        "carried_over": {
            # Counted on the day they succeed (or never, if they fail).
            "pending_payments": {"count": int(pending.n), "amount": int(pending.amount)},
            # Their cash is counted in the report of the day they close.
            "open_shifts": open_shifts,
        },
        "previous_hash": plan.previous_hash,
        "created_at": instant(now),
    }


class DayNotOver(Conflict):
    code, title = "business_day_not_over", "Business day not over"


class DayAlreadyClosed(Conflict):
    code, title = "day_already_closed", "Day already closed"


class CloseOutOfOrder(Conflict):
    code, title = "closeout_out_of_order", "Days are closed in order"


@dataclass(frozen=True, slots=True)
class Sealed:
    report: dict[str, Any]
    written: bool  # False for a dry run


async def close_day(
    session: AsyncSession,
    merchant_id: str,
    store_id: str,
    business_date: date | None,
    now: datetime,
    *,
    grace: timedelta = timedelta(0),
    dry_run: bool = False,
) -> Sealed:
    """Seal the store's next business day (or check that `business_date` is it). The caller's transaction holds the
    store's row lock from here to its commit, so two closes of one store never interleave; the unique
    (store_id, business_date) and (store_id, number) keep it so even without the lock."""
    store = await lock_store(session, merchant_id, store_id)
    if store is None:
        raise NotFound("store not found")
    plan = await next_close(session, store)
    if business_date is not None and business_date != plan.business_date:
        scope = {"store_id": store_id, "merchant_id": merchant_id, "day": business_date}
        if business_date < plan.business_date:
            found = (await session.execute(text(REPORT_FOR_DATE), scope)).scalar_one_or_none()
            if found is not None:
                raise DayAlreadyClosed(f"{business_date} is closed (Z report {found}); corrections land on a later day")
            raise Unprocessable(
                f"{business_date} is before the store's first business day ({plan.business_date})",
                code="before_first_business_day",
            )
        raise CloseOutOfOrder(
            f"days are closed in order: the next day to close is {plan.business_date}",
            extra={"next_business_date": plan.business_date.isoformat()},
        )
    if plan.window_end <= plan.window_start:
        raise Conflict(
            "the store's new timezone or closing time makes this day empty; close the next one",
            code="empty_business_day",
        )
    if now < plan.window_end + grace:
        raise DayNotOver(
            f"business day {plan.business_date} ends at {instant(plan.window_end)}",
            extra={"business_date": plan.business_date.isoformat(), "ends_at": instant(plan.window_end)},
        )
    report = await compute(session, store, plan, now)
    report["hash"] = seal(report)
    if not dry_run:
        await session.execute(
            text(INSERT),
            {
                **report,
                "business_date": plan.business_date,
                "window_start": plan.window_start,
                "window_end": plan.window_end,
                "created_at": now,
                "by_method": json.dumps(report["by_method"]),
                "shifts": json.dumps(report["shifts"]),
                "carried_over": json.dumps(report["carried_over"]),
            },
        )
    return Sealed(report, written=not dry_run)


def document_of(row: Any) -> dict[str, Any]:
    """A stored report as the document its hash was computed over (plus the hash)."""
    return {
        "id": row.id,
        "merchant_id": row.merchant_id,
        "store_id": row.store_id,
        "number": int(row.number),
        "business_date": row.business_date.isoformat(),
        "timezone": row.timezone,
        "window_start": instant(row.window_start),
        "window_end": instant(row.window_end),
        "currency": row.currency,
        "orders": int(row.orders),
        "gross_sales": int(row.gross_sales),
        "refunds": int(row.refunds),
        "net_sales": int(row.net_sales),
        "by_method": row.by_method,
        "shifts": row.shifts,
        "carried_over": row.carried_over,
        "previous_hash": row.previous_hash,
        "created_at": instant(row.created_at),
        "hash": row.hash,
    }


async def list_reports(
    session: AsyncSession, merchant_id: str, store_id: str, before_id: str | None, limit: int
) -> list[dict[str, Any]]:
    """Newest first (a store's reports are sealed one at a time, so their ids rise with their numbers)."""
    rows = await session.execute(
        text(LIST),
        {"merchant_id": merchant_id, "store_id": store_id, "before": before_id, "limit": limit},
    )
    return [document_of(row) for row in rows]


async def get_report(session: AsyncSession, merchant_id: str, report_id: str) -> dict[str, Any] | None:
    row = (
        await session.execute(
            text(GET),
            {"id": report_id, "merchant_id": merchant_id},
        )
    ).one_or_none()
    return None if row is None else document_of(row)


@dataclass(frozen=True, slots=True)
class Verification:
    intact: bool
    reports: int
    broken_at: int | None = None  # the number of the first report that does not verify
    problem: str | None = None

    def body(self) -> dict[str, Any]:
        return {"intact": self.intact, "reports": self.reports, "broken_at": self.broken_at, "problem": self.problem}


def verify_chain(documents: list[dict[str, Any]]) -> Verification:
    """Documents in number order, from the first: numbers without gap, each hash recomputed, each link and window
    joined to the previous report."""
    previous_hash, previous_end = GENESIS_HASH, None
    for expected_number, document in enumerate(documents, start=1):
        number = document["number"]
        if number != expected_number:
            return Verification(False, len(documents), number, f"report {expected_number} is missing")
        if document["previous_hash"] != previous_hash:
            return Verification(False, len(documents), number, "previous_hash does not match the previous report")
        if seal(document) != document["hash"]:
            return Verification(False, len(documents), number, "the report's content does not match its hash")
        if previous_end is not None and document["window_start"] != previous_end:
            return Verification(False, len(documents), number, "the window does not start where the last ended")
        previous_hash, previous_end = document["hash"], document["window_end"]
    return Verification(True, len(documents))


async def verify_store(session: AsyncSession, merchant_id: str, store_id: str) -> Verification:
    rows = await session.execute(
        text(CHAIN),
        {"merchant_id": merchant_id, "store_id": store_id},
    )
    return verify_chain([document_of(row) for row in rows])


WINDOW_OF = """
SELECT window_start, window_end FROM z_reports
WHERE merchant_id = :merchant_id AND store_id = :store_id AND business_date = :day"""


async def window_of(
    session: AsyncSession, merchant_id: str, store_id: str, day: date
) -> tuple[datetime, datetime, bool] | None:
    """The window of business date `day` at the store: the sealed report's, else the one computed from the
    store's timezone and closing time; and whether it is sealed. None: no such store."""
    row = (
        await session.execute(text(WINDOW_OF), {"merchant_id": merchant_id, "store_id": store_id, "day": day})
    ).one_or_none()
    if row is not None:
        return row.window_start, row.window_end, True
    store = (
        await session.execute(
            text("SELECT timezone, day_closes_at FROM stores WHERE id = :store_id AND merchant_id = :merchant_id"),
            {"store_id": store_id, "merchant_id": merchant_id},
        )
    ).one_or_none()
    if store is None:
        return None
    start, end = BusinessDay(store.timezone, store.day_closes_at).window(day)
    return start, end, False


def emit_sealed(transaction: Transaction, report: dict[str, Any]) -> None:
    emit(
        transaction,
        "closeout.created",
        merchant_id=report["merchant_id"],
        store_id=report["store_id"],
        subject=report["id"],
        version=1,
        data=report,
    )
