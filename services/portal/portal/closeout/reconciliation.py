"""Settlement reconciliation: a store's business day of card and qr money, matched with what the gateway settled.

Platform side: the store's card/qr payments that succeeded in the day's window and its card/qr refunds that
succeeded in it. Gateway side: its settlement report for the store. Matched by `pgw_reference`:

- `matched`: both sides, same amount;
- `amount_mismatch`: both sides, different amounts;
- `missing_at_gateway`: the platform counted it, the gateway never settled it;
- `missing_in_platform`: the gateway settled it in the window, the platform counts it on no day (unknown
  reference, or a payment the platform holds as pending, failed or voided — `platform_status` says which).

The gateway stamps a settlement when it captures; the platform when the webhook arrives, a moment later. So the
gateway's report is read with `MARGIN` either side of the window, and an entry settled inside the window whose
payment the platform counts on the neighbouring day is not a difference.
"""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from ..pgw.gateway import PaymentGateway
from .zreport import instant

MARGIN = timedelta(hours=1)

PLATFORM = """
SELECT 'payment' AS kind, id, pgw_reference, amount FROM payments
WHERE merchant_id = :merchant_id AND store_id = :store_id AND method IN ('card', 'qr') AND pgw_reference IS NOT NULL
  AND succeeded_at >= :start AND succeeded_at < :end
UNION ALL
SELECT 'refund', id, pgw_reference, amount FROM refunds
WHERE merchant_id = :merchant_id AND store_id = :store_id AND method IN ('card', 'qr') AND status = 'succeeded'
  AND pgw_reference IS NOT NULL AND updated_at >= :start AND updated_at < :end"""
KNOWN = """
SELECT 'payment' AS kind, id, pgw_reference, status, succeeded_at AS counted_at FROM payments
WHERE merchant_id = :merchant_id AND pgw_reference = ANY(:references)
UNION ALL
SELECT 'refund', id, pgw_reference, status, CASE WHEN status = 'succeeded' THEN updated_at END FROM refunds
WHERE merchant_id = :merchant_id AND pgw_reference = ANY(:references)"""
STORED = """
SELECT result FROM reconciliations WHERE merchant_id = :merchant_id AND store_id = :store_id AND business_date = :day"""
INSERT = """
INSERT INTO reconciliations (store_id, business_date, merchant_id, status, result, created_at)
VALUES (:store_id, :day, :merchant_id, :status, CAST(:result AS jsonb), :now)
ON CONFLICT (store_id, business_date) DO NOTHING"""


async def reconcile(
    session: AsyncSession,
    gateway: PaymentGateway,
    merchant_id: str,
    store_id: str,
    business_date: date,
    start: datetime,
    end: datetime,
) -> dict[str, Any]:
    scope = {"merchant_id": merchant_id, "store_id": store_id, "start": start, "end": end}
    platform = {row.pgw_reference: row for row in await session.execute(text(PLATFORM), scope)}
    settled = await gateway.settlement_report(store_id, start - MARGIN, end + MARGIN)
    at_gateway = {entry.pgw_reference: entry for entry in settled}
    matched_count = matched_amount = 0
    mismatches, missing_at_gateway, missing_in_platform = [], [], []
    for reference, row in sorted(platform.items()):
        entry = at_gateway.get(reference)
        if entry is None:
            missing_at_gateway.append(
                {"kind": row.kind, "id": row.id, "pgw_reference": reference, "amount": int(row.amount)}
            )
        elif entry.amount != row.amount:
            mismatches.append(
                {
                    "kind": row.kind,
                    "id": row.id,
                    "pgw_reference": reference,
                    "platform_amount": int(row.amount),
                    "gateway_amount": entry.amount,
                }
            )
        else:
            matched_count += 1
            matched_amount += entry.amount
    unmatched = [e for e in settled if e.pgw_reference not in platform and start <= e.settled_at < end]
    if unmatched:
        references = [e.pgw_reference for e in unmatched]
        known = {
            row.pgw_reference: row
            for row in await session.execute(text(KNOWN), {"merchant_id": merchant_id, "references": references})
        }
        for entry in sorted(unmatched, key=lambda e: (e.settled_at, e.pgw_reference)):
            found = known.get(entry.pgw_reference)
            if found is not None and found.counted_at is not None:
                continue  # the platform counts it on a neighbouring day (settled and confirmed across midnight)
            missing_in_platform.append(
                {
                    "kind": entry.kind,
                    "pgw_reference": entry.pgw_reference,
                    "amount": entry.amount,
                    "settled_at": instant(entry.settled_at),
                    "id": found.id if found is not None else None,
                    "platform_status": found.status if found is not None else None,
                }
            )
    differences = bool(mismatches or missing_at_gateway or missing_in_platform)
    return {
        "store_id": store_id,
        "business_date": business_date.isoformat(),
        "window_start": instant(start),
        "window_end": instant(end),
        "status": "differences" if differences else "balanced",
        "matched": {"count": matched_count, "amount": matched_amount},
        "missing_at_gateway": missing_at_gateway,
        "missing_in_platform": missing_in_platform,
        "amount_mismatch": mismatches,
    }


async def stored(session: AsyncSession, merchant_id: str, store_id: str, day: date) -> dict[str, Any] | None:
    result: dict[str, Any] | None = (
        await session.execute(text(STORED), {"merchant_id": merchant_id, "store_id": store_id, "day": day})
    ).scalar_one_or_none()
    return result


async def save(session: AsyncSession, merchant_id: str, result: dict[str, Any], now: datetime) -> None:
    await session.execute(
        text(INSERT),
        {
            "store_id": result["store_id"],
            "day": date.fromisoformat(result["business_date"]),
            "merchant_id": merchant_id,
            "status": result["status"],
            "result": json.dumps(result),
            "now": now,
        },
    )
