"""Credit programmes: a store's periodic allocation of credit to enrolled accounts, with expiry and carry-over,
applied by the overnight run.

When the overnight run seals a store's business date D, business date D + 1 begins; for every programme of the
store whose period starts on D + 1 (`daily`: every day; `weekly`: Mondays; `monthly`: the 1st) and every account
enrolled in it, in the same transaction as D's Z report:

1. `expire`: what the account holds above `carry_over_max` (NULL: everything carries over) expires;
2. `allocate`: `allocation_amount` is credited.

Each entry carries a dedupe key `{programme}:{D+1}:{kind}`, unique per account: a programme period is applied
once whatever runs twice; and since it shares the Z report's transaction, a run killed half-way leaves a day
either sealed with its programme entries or neither. A dry run computes the same entries in a transaction that is
rolled back. The programme's accounts should be dedicated to it: expiry applies to the account's whole balance.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from smartpos_shared.db import Transaction
from smartpos_shared.ids import new_id

from ..events import emit

PERIODS = ("daily", "weekly", "monthly")

PROGRAMMES = """
SELECT p.id, p.allocation_amount, p.period, p.carry_over_max, e.account_id
FROM credit_programmes p JOIN credit_enrolments e ON e.programme_id = p.id AND e.merchant_id = p.merchant_id
WHERE p.merchant_id = :merchant_id AND p.store_id = :store_id
ORDER BY p.id, e.account_id"""
BALANCE = """
SELECT balance FROM credit_accounts WHERE id = :account_id AND merchant_id = :merchant_id FOR UPDATE"""
APPLY = """
WITH a AS (
    UPDATE credit_accounts SET balance = balance + :amount, version = version + 1, updated_at = :now
    WHERE id = :account_id AND merchant_id = :merchant_id AND balance + :amount >= 0
    RETURNING id, balance
)
INSERT INTO credit_entries (id, merchant_id, account_id, kind, amount, balance_after, programme_id,
                            business_date, dedupe_key, created_at)
SELECT :id, :merchant_id, a.id, :kind, :amount, a.balance, :programme_id, :business_date, :dedupe_key, :now FROM a
RETURNING id, account_id, kind, amount, balance_after, programme_id, business_date, dedupe_key"""
APPLIED = """
SELECT 1 FROM credit_entries WHERE account_id = :account_id AND merchant_id = :merchant_id AND dedupe_key = :key"""


def emit_entries(transaction: Transaction, merchant_id: str, store_id: str, entries: list[dict[str, Any]]) -> None:
    """Each programme entry the overnight run wrote is an event, `credit_entry.created`, in the same transaction
    (services and the console see allocations and expiries as they happen; certification judges
    "credits reallocated" from them)."""
    for entry in entries:
        emit(
            transaction,
            "credit_entry.created",
            merchant_id=merchant_id,
            store_id=store_id,
            subject=str(entry["id"]),
            version=1,
            data={k: v for k, v in entry.items() if k != "credit_entry"},
        )


def starts_period(period: str, day: date) -> bool:
    if period == "daily":
        return True
    if period == "weekly":
        return day.weekday() == 0
    return day.day == 1


async def apply_for_new_day(
    session: AsyncSession, merchant_id: str, store_id: str, new_day: date, now: datetime
) -> list[dict[str, Any]]:
    """The programme entries business date `new_day` starts, written in the caller's transaction."""
    written: list[dict[str, Any]] = []
    rows = (await session.execute(text(PROGRAMMES), {"merchant_id": merchant_id, "store_id": store_id})).all()
    for programme_id, allocation, period, carry_over_max, account_id in rows:
        if not starts_period(period, new_day):
            continue
        scope = {"account_id": account_id, "merchant_id": merchant_id}
        balance = (await session.execute(text(BALANCE), scope)).scalar_one()
        entries = []
        if carry_over_max is not None and balance > carry_over_max:
            entries.append(("expire", carry_over_max - balance))
        entries.append(("allocate", allocation))
        for kind, amount in entries:
            key = f"{programme_id}:{new_day.isoformat()}:{kind}"
            if (await session.execute(text(APPLIED), {**scope, "key": key})).first() is not None:
                continue  # this period was applied already
            row = (
                await session.execute(
                    text(APPLY),
                    {
                        **scope,
                        "id": new_id("cre"),
                        "kind": kind,
                        "amount": amount,
                        "now": now,
                        "programme_id": programme_id,
                        "business_date": new_day,
                        "dedupe_key": key,
                    },
                )
            ).one()
            written.append(
                {
                    "credit_entry": True,
                    "id": row.id,
                    "account_id": row.account_id,
                    "kind": row.kind,
                    "amount": row.amount,
                    "balance_after": row.balance_after,
                    "programme_id": row.programme_id,
                    "business_date": row.business_date.isoformat(),
                    "dedupe_key": row.dedupe_key,
                }
            )
    return written


async def create_programme(
    session: AsyncSession,
    merchant_id: str,
    store_id: str,
    name: str,
    allocation_amount: int,
    period: str,
    carry_over_max: int | None,
    now: datetime,
) -> dict[str, Any] | None:
    row = (
        await session.execute(
            text(
                "INSERT INTO credit_programmes (id, merchant_id, store_id, name, allocation_amount, period,"
                " carry_over_max, created_at) SELECT :id, s.merchant_id, s.id, :name, :allocation, :period, :carry,"
                " :now FROM stores s WHERE s.id = :store_id AND s.merchant_id = :merchant_id"
                " RETURNING id, merchant_id, store_id, name, allocation_amount, period, carry_over_max, created_at"
            ),
            {
                "id": new_id("crp"),
                "name": name,
                "allocation": allocation_amount,
                "period": period,
                "carry": carry_over_max,
                "now": now,
                "store_id": store_id,
                "merchant_id": merchant_id,
            },
        )
    ).one_or_none()
    return None if row is None else dict(row._mapping)


async def enrol(session: AsyncSession, merchant_id: str, programme_id: str, account_id: str, now: datetime) -> bool:
    """False when the programme or the account is not the merchant's. Enrolling twice is harmless."""
    result = await session.execute(
        text(
            "INSERT INTO credit_enrolments (programme_id, account_id, merchant_id, created_at)"
            " SELECT p.id, a.id, p.merchant_id, :now FROM credit_programmes p"
            " JOIN credit_accounts a ON a.merchant_id = p.merchant_id AND a.id = :account_id"
            " WHERE p.id = :programme_id AND p.merchant_id = :merchant_id"
            " ON CONFLICT (programme_id, account_id) DO NOTHING RETURNING 1"
        ),
        {"now": now, "account_id": account_id, "programme_id": programme_id, "merchant_id": merchant_id},
    )
    if result.first() is not None:
        return True
    exists = await session.execute(
        text(
            "SELECT 1 FROM credit_enrolments WHERE programme_id = :programme_id AND account_id = :account_id"
            " AND merchant_id = :merchant_id"
        ),
        {"programme_id": programme_id, "account_id": account_id, "merchant_id": merchant_id},
    )
    return exists.first() is not None


async def merchant_of(session: AsyncSession, programme_id: str) -> str | None:
    """Tenant resolution (admins): who owns the programme."""
    value: str | None = (
        await session.execute(
            text("SELECT /* tenant-resolution */ merchant_id FROM credit_programmes WHERE id = :id"),
            {"id": programme_id},
        )
    ).scalar_one_or_none()
    return value
