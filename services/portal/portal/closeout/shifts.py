"""Cash drawer shifts: opened with a float, paid in and paid out while open, closed with the counted cash.

One drawer per store: at most one open shift per store (a partial unique index). The shift's cash sales and
refunds are the store's cash payments and refunds that succeeded while it was open; the expected cash is
`opening_float + cash_sales - cash_refunds + paid_in - paid_out` (a CHECK), the difference `counted - expected`.
A device closes blind: it never sees the expected amount of an open shift, only the result once it has counted.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from smartpos_shared.auth import Principal, Role
from smartpos_shared.db import Transaction
from smartpos_shared.errors import Conflict, NotFound
from smartpos_shared.ids import new_id

from ..events import emit
from ..tenancy import Tenant

COLUMNS = (
    "id, merchant_id, store_id, status, currency, opening_float, opened_by, opened_at, closed_at, paid_in, paid_out,"
    " cash_sales, cash_refunds, expected_cash, counted_cash, difference, version"
)
GET = (
    f"SELECT {COLUMNS} FROM shifts WHERE id = :id AND merchant_id = :merchant_id"  # noqa: S608  (constants only)
    " AND (CAST(:store_id AS text) IS NULL OR store_id = :store_id)"
)
LIST = (
    f"SELECT {COLUMNS} FROM shifts WHERE merchant_id = :merchant_id"  # noqa: S608  (constants only)
    " AND (CAST(:own_store AS text) IS NULL OR store_id = :own_store)"
    " AND (CAST(:store_id AS text) IS NULL OR store_id = :store_id)"
    " AND (CAST(:status AS text) IS NULL OR status = :status)"
    " AND (CAST(:before AS text) IS NULL OR id < :before)"
    " ORDER BY id DESC LIMIT :limit"
)
MOVE_CASH = {
    kind: f"UPDATE shifts SET {kind} = {kind} + :amount, version = version + 1"  # noqa: S608  (two constants)
    " WHERE id = :id AND merchant_id = :merchant_id"
    for kind in ("paid_in", "paid_out")
}
CASH_IN_WINDOW = """
SELECT
  (SELECT coalesce(sum(amount), 0) FROM payments
    WHERE merchant_id = :merchant_id AND store_id = :store_id AND method = 'cash'
      AND succeeded_at >= :start AND succeeded_at < :end) AS sales,
  (SELECT coalesce(sum(amount), 0) FROM refunds
    WHERE merchant_id = :merchant_id AND store_id = :store_id AND method = 'cash' AND status = 'succeeded'
      AND updated_at >= :start AND updated_at < :end) AS refunds"""


OPEN_END = datetime(9999, 12, 31, tzinfo=UTC)  # "until now and later" for an open shift's running figures


class ShiftAlreadyOpen(Conflict):
    code, title = "shift_already_open", "A shift is already open"


class ShiftClosed(Conflict):
    code, title = "shift_closed", "Shift closed"


@dataclass(frozen=True, slots=True)
class Shift:
    row: Any

    def body(self, *, blind: bool, running: tuple[int, int] | None = None) -> dict[str, Any]:
        """`blind`: the expected amount of an open shift is withheld (a device before its count). `running`:
        cash sales and refunds so far, for an open shift shown to a merchant."""
        r = self.row
        closed = r.status == "closed"
        cash_sales, cash_refunds = (r.cash_sales, r.cash_refunds) if closed else (running or (None, None))
        expected = r.expected_cash
        if not closed and running is not None and not blind:
            expected = r.opening_float + running[0] - running[1] + r.paid_in - r.paid_out
        if blind and not closed:
            cash_sales = cash_refunds = expected = None
        return {
            "id": r.id,
            "merchant_id": r.merchant_id,
            "store_id": r.store_id,
            "status": r.status,
            "currency": r.currency,
            "opening_float": r.opening_float,
            "opened_at": r.opened_at,
            "closed_at": r.closed_at,
            "cash_sales": cash_sales,
            "cash_refunds": cash_refunds,
            "paid_in": r.paid_in,
            "paid_out": r.paid_out,
            "expected_cash": expected,
            "counted_cash": r.counted_cash,
            "difference": r.difference,
            "version": r.version,
        }


def blind_for(principal: Principal) -> bool:
    return principal.role is Role.device


async def _get(session: AsyncSession, tenant: Tenant, shift_id: str, *, lock: bool = False) -> Shift | None:
    row = (
        await session.execute(
            text(GET + (" FOR UPDATE" if lock else "")),
            {"id": shift_id, "merchant_id": tenant.merchant_id, "store_id": tenant.store_id},
        )
    ).one_or_none()
    return None if row is None else Shift(row)


async def resolve_merchant(session: AsyncSession, shift_id: str) -> str | None:
    """Tenant resolution (admins): who owns the shift."""
    value: str | None = (
        await session.execute(
            text("SELECT /* tenant-resolution */ merchant_id FROM shifts WHERE id = :id"), {"id": shift_id}
        )
    ).scalar_one_or_none()
    return value


async def cash_between(
    session: AsyncSession, merchant_id: str, store_id: str, start: datetime, end: datetime
) -> tuple[int, int]:
    row = (
        await session.execute(
            text(CASH_IN_WINDOW), {"merchant_id": merchant_id, "store_id": store_id, "start": start, "end": end}
        )
    ).one()
    return int(row.sales), int(row.refunds)


async def open_shift(
    transaction: Transaction, tenant: Tenant, principal: Principal, store_id: str, opening_float: int, now: datetime
) -> dict[str, Any]:
    session = transaction.session
    currency = (
        await session.execute(
            text(
                "SELECT m.currency FROM stores s JOIN merchants m ON m.id = s.merchant_id"
                " WHERE s.id = :store_id AND s.merchant_id = :merchant_id"
            ),
            {"store_id": store_id, "merchant_id": tenant.merchant_id},
        )
    ).scalar_one_or_none()
    if currency is None or (tenant.store_id is not None and tenant.store_id != store_id):
        raise NotFound("store not found")
    shift_id = new_id("shf")
    try:
        async with session.begin_nested():
            await session.execute(
                text(
                    "INSERT INTO shifts (id, merchant_id, store_id, status, currency, opening_float, opened_by,"
                    " opened_at, version) VALUES (:id, :merchant_id, :store_id, 'open', :currency, :opening_float,"
                    " :opened_by, :now, 1)"
                ),
                {
                    "id": shift_id,
                    "merchant_id": tenant.merchant_id,
                    "store_id": store_id,
                    "currency": currency,
                    "opening_float": opening_float,
                    "opened_by": principal.subject,
                    "now": now,
                },
            )
    except IntegrityError:
        raise ShiftAlreadyOpen("the store's drawer has an open shift; close it first") from None
    shift = await _get(session, tenant, shift_id)
    assert shift is not None
    body = shift.body(blind=False, running=(0, 0))
    _emit(transaction, "shift.opened", shift, body)
    return shift.body(blind=blind_for(principal), running=(0, 0))


async def get_shift(session: AsyncSession, tenant: Tenant, principal: Principal, shift_id: str) -> dict[str, Any]:
    shift = await _get(session, tenant, shift_id)
    if shift is None:
        raise NotFound("shift not found")
    if shift.row.status == "open" and not blind_for(principal):
        r = shift.row  # cash so far: from the shift's opening to any time
        return shift.body(
            blind=False, running=await cash_between(session, r.merchant_id, r.store_id, r.opened_at, OPEN_END)
        )
    return shift.body(blind=blind_for(principal))


async def list_shifts(
    session: AsyncSession, tenant: Tenant, store_id: str | None, status: str | None, before_id: str | None, limit: int
) -> list[Shift]:
    rows = await session.execute(
        text(LIST),
        {
            "merchant_id": tenant.merchant_id,
            "own_store": tenant.store_id,
            "store_id": store_id,
            "status": status,
            "before": before_id,
            "limit": limit + 1,
        },
    )
    return [Shift(row) for row in rows]


async def add_cash_movement(
    transaction: Transaction, tenant: Tenant, shift_id: str, kind: str, amount: int, note: str | None, now: datetime
) -> dict[str, Any]:
    session = transaction.session
    shift = await _get(session, tenant, shift_id, lock=True)
    if shift is None:
        raise NotFound("shift not found")
    if shift.row.status != "open":
        raise ShiftClosed("the shift is closed; cash moves on an open shift")
    movement_id = new_id("cmv")
    await session.execute(
        text(
            "INSERT INTO cash_movements (id, merchant_id, shift_id, kind, amount, note, created_at)"
            " VALUES (:id, :merchant_id, :shift_id, :kind, :amount, :note, :now)"
        ),
        {
            "id": movement_id,
            "merchant_id": tenant.merchant_id,
            "shift_id": shift_id,
            "kind": kind,
            "amount": amount,
            "note": note,
            "now": now,
        },
    )
    await session.execute(
        text(MOVE_CASH[kind]),
        {"amount": amount, "id": shift_id, "merchant_id": tenant.merchant_id},
    )
    return {
        "id": movement_id,
        "shift_id": shift_id,
        "kind": kind,
        "amount": amount,
        "note": note,
        "created_at": now,
    }


async def close_shift(
    transaction: Transaction, tenant: Tenant, principal: Principal, shift_id: str, counted_cash: int, now: datetime
) -> dict[str, Any]:
    session = transaction.session
    shift = await _get(session, tenant, shift_id, lock=True)
    if shift is None:
        raise NotFound("shift not found")
    if shift.row.status != "open":
        raise ShiftClosed("the shift is already closed")
    sales, refunds = await cash_between(session, shift.row.merchant_id, shift.row.store_id, shift.row.opened_at, now)
    expected = shift.row.opening_float + sales - refunds + shift.row.paid_in - shift.row.paid_out
    await session.execute(
        text(
            "UPDATE shifts SET status = 'closed', closed_at = :now, cash_sales = :sales, cash_refunds = :refunds,"
            " expected_cash = :expected, counted_cash = :counted,"
            " difference = CAST(:counted AS bigint) - CAST(:expected AS bigint),"
            " version = version + 1 WHERE id = :id AND merchant_id = :merchant_id"
        ),
        {
            "now": now,
            "sales": sales,
            "refunds": refunds,
            "expected": expected,
            "counted": counted_cash,
            "id": shift_id,
            "merchant_id": tenant.merchant_id,
        },
    )
    closed = await _get(session, tenant, shift_id)
    assert closed is not None
    body = closed.body(blind=False)
    _emit(transaction, "shift.closed", closed, body)
    return body


def _emit(transaction: Transaction, event_type: str, shift: Shift, body: dict[str, Any]) -> None:
    data = {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in body.items()}
    emit(
        transaction,
        event_type,
        merchant_id=shift.row.merchant_id,
        store_id=shift.row.store_id,
        subject=shift.row.id,
        version=shift.row.version,
        data=data,
    )
