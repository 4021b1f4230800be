"""The credit ledger: every change of a balance is one statement that moves the balance and appends the entry.

`UPDATE credit_accounts … WHERE balance + amount >= 0 RETURNING balance` takes the account's row lock and, if it
had to wait for it, re-checks the condition on the row as the other transaction left it (PostgreSQL's
EvalPlanQual): so concurrent redemptions never overdraw, and `balance_after` is always the balance the entry
produced. The entry is inserted from that RETURNING in the same statement: no balance without its entry.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from smartpos_shared.errors import NotFound, Unprocessable
from smartpos_shared.ids import new_id
from smartpos_shared.pg import Db

APPLY = """
WITH a AS (
    UPDATE credit_accounts SET balance = balance + $3, version = version + 1, updated_at = $5
    WHERE id = $2 AND merchant_id = $1 AND balance + $3 >= 0 AND ($9::text IS NULL OR currency = $9)
    RETURNING id, balance
)
INSERT INTO credit_entries (id, merchant_id, account_id, kind, amount, balance_after, payment_id, refund_id, note,
                            created_at)
SELECT $4, $1, a.id, $6, $3, a.balance, $7, $8, $10, $5 FROM a
RETURNING id, account_id, kind, amount, balance_after, payment_id, refund_id, note, created_at"""
ACCOUNT = """
SELECT id, merchant_id, customer_ref, currency, balance, version, created_at, updated_at FROM credit_accounts
WHERE id = $1 AND merchant_id = $2"""
REDEEMED = """
SELECT account_id FROM credit_entries WHERE merchant_id = $1 AND payment_id = $2 AND kind = 'redeem'"""


class InsufficientCredit(Unprocessable):
    code, title = "insufficient_credit", "Insufficient credit"


class CurrencyMismatch(Unprocessable):
    code, title = "credit_currency_mismatch", "Credit account in another currency"


@dataclass(frozen=True, slots=True)
class Entry:
    kind: str
    amount: int  # signed
    payment_id: str | None = None
    refund_id: str | None = None
    note: str | None = None


def entry_body(row: asyncpg.Record) -> dict[str, Any]:
    return {
        "id": row["id"],
        "account_id": row["account_id"],
        "kind": row["kind"],
        "amount": row["amount"],
        "balance_after": row["balance_after"],
        "payment_id": row["payment_id"],
        "refund_id": row["refund_id"],
        "note": row["note"],
        "created_at": row["created_at"],
    }


def account_body(row: asyncpg.Record) -> dict[str, Any]:
    return {
        "id": row["id"],
        "merchant_id": row["merchant_id"],
        "customer_ref": row["customer_ref"],
        "currency": row["currency"],
        "balance": row["balance"],
        "version": row["version"],
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
    }


async def apply(
    db: Db, merchant_id: str, account_id: str, entry: Entry, now: datetime, *, currency: str | None = None
) -> dict[str, Any]:
    """Append `entry` and move the balance, or raise: 404 for an account the merchant does not have, 422
    `insufficient_credit` for a debit the balance cannot cover (nothing written), 422 for another currency."""
    row = await db.fetchrow(
        APPLY,
        merchant_id,
        account_id,
        entry.amount,
        new_id("cre"),
        now,
        entry.kind,
        entry.payment_id,
        entry.refund_id,
        currency,
        entry.note,
    )
    if row is not None:
        return entry_body(row)
    account = await db.fetchrow(ACCOUNT, account_id, merchant_id)
    if account is None:
        raise NotFound("credit account not found")
    if currency is not None and account["currency"] != currency:
        raise CurrencyMismatch(f"the account holds {account['currency']}, the bill is in {currency}")
    raise InsufficientCredit(
        f"the account's balance ({account['balance']}) does not cover {-entry.amount}",
        extra={"balance": account["balance"]},
    )


async def account_of_redemption(db: Db, merchant_id: str, payment_id: str) -> str | None:
    value: str | None = await db.fetchval(REDEEMED, merchant_id, payment_id)
    return value
