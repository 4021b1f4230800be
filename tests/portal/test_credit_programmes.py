"""Credit programmes applied by the overnight run (in process, with an injected clock, against the real
PostgreSQL): allocation, expiry and carry-over across a month boundary give the documented balances, the dry run
shows exactly the entries the real run writes, and a second run writes nothing."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy import text

from portal.closeout.overnight import Overnight
from tests.portal.helpers import bill, ring_up
from tests.support.portal_fixtures import MakeTenant, Tenant


def overnight_at(app: FastAPI, moment: datetime) -> Overnight:
    return Overnight(
        app.state.services,
        app.state.engine,
        grace=timedelta(0),
        pending_max_age=timedelta(days=3650),
        concurrency=1,
        clock=lambda: moment.timestamp(),
    )


async def entries(app: FastAPI, account_id: str) -> list[dict[str, Any]]:
    async with app.state.engine.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT kind, amount, balance_after, programme_id, business_date, dedupe_key FROM credit_entries"
                " WHERE account_id = :a ORDER BY created_at, id"
            ),
            {"a": account_id},
        )
        return [dict(r._mapping) for r in rows]


async def test_a_monthly_allocation_expires_above_its_carry_over_across_the_month_boundary(
    portal: httpx.AsyncClient, portal_app: FastAPI, tenant: Tenant
) -> None:
    store = await portal.patch(f"/stores/{tenant.store_id}", json={"timezone": "UTC"}, headers=tenant.as_merchant)
    assert store.status_code == 200
    account = (
        await portal.post("/credit-accounts", json={"customer_ref": uuid.uuid4().hex}, headers=tenant.as_merchant)
    ).json()
    programme = await portal.post(
        "/credit-programmes",
        json={
            "store_id": tenant.store_id,
            "name": "staff meals",
            "allocation_amount": 10_000,
            "period": "monthly",
            "carry_over_max": 3_000,
        },
        headers=tenant.as_merchant,
    )
    assert programme.status_code == 201, programme.text
    enrolled = await portal.post(
        f"/credit-programmes/{programme.json()['id']}/enrolments",
        json={"account_id": account["id"]},
        headers=tenant.as_merchant,
    )
    assert enrolled.status_code == 201, enrolled.text

    # The overnight run after 2026-11-30 closes: December's period starts — nothing to expire, 10,000 allocated.
    december = overnight_at(portal_app, datetime(2026, 12, 1, 5, 0, tzinfo=UTC))
    first = await december.run(merchant_id=tenant.merchant_id)
    assert first.credit_entries == 1
    balance = (await portal.get(f"/credit-accounts/{account['id']}", headers=tenant.as_merchant)).json()["balance"]
    assert balance == 10_000

    # 4,000 spent in December (a credit payment at the till).
    portal_app.state.business_clock.offset = (
        datetime(2026, 12, 5, 12, tzinfo=UTC).timestamp() - portal_app.state.clock()
    )
    for _ in range(4):  # orders of 1,000 each: 500 + 500
        order = await ring_up(portal, tenant, (2,))
        b = await bill(portal, tenant, order["id"])
        paid = await portal.post(
            "/payments",
            json={"bill_id": b["id"], "amount": 1_000, "method": "credit", "credit_account_id": account["id"]},
            headers=tenant.as_device,
        )
        assert paid.status_code == 201, paid.text

    # New Year: the dry run first, then the real run — the same entries; then nothing more on a second run.
    january = overnight_at(portal_app, datetime(2027, 1, 1, 4, 30, tzinfo=UTC))
    dry = await january.run(dry_run=True, merchant_id=tenant.merchant_id)
    planned = [
        {k: r[k] for k in ("kind", "amount", "balance_after", "dedupe_key")} for r in dry.reports if "credit_entry" in r
    ]
    assert len(await entries(portal_app, account["id"])) == 1 + 4  # December's allocation, 4 redemptions: no more
    real = await january.run(merchant_id=tenant.merchant_id)
    assert real.credit_entries == 2
    written = [
        e for e in await entries(portal_app, account["id"]) if e["dedupe_key"] and "2027-01-01" in e["dedupe_key"]
    ]
    assert planned == [{k: e[k] for k in ("kind", "amount", "balance_after", "dedupe_key")} for e in written]
    assert [(e["kind"], e["amount"], e["balance_after"]) for e in written] == [
        ("expire", -3_000, 3_000),  # 6,000 held, 3,000 carried over
        ("allocate", 10_000, 13_000),
    ]
    again = await january.run(merchant_id=tenant.merchant_id)
    assert (again.sealed, again.credit_entries) == (0, 0)
    balance = (await portal.get(f"/credit-accounts/{account['id']}", headers=tenant.as_merchant)).json()["balance"]
    assert balance == 13_000


async def test_programmes_are_tenant_isolated(portal: httpx.AsyncClient, make_tenant: MakeTenant) -> None:
    mine, theirs = await make_tenant(), await make_tenant()
    body = {"store_id": mine.store_id, "name": "x", "allocation_amount": 100, "period": "daily"}
    assert (await portal.post("/credit-programmes", json=body, headers=theirs.as_merchant)).status_code == 404
    assert (await portal.post("/credit-programmes", json=body, headers=mine.as_device)).status_code == 404
    programme = (await portal.post("/credit-programmes", json=body, headers=mine.as_merchant)).json()
    their_account = (await portal.post("/credit-accounts", json={}, headers=theirs.as_merchant)).json()
    my_account = (await portal.post("/credit-accounts", json={}, headers=mine.as_merchant)).json()
    path = f"/credit-programmes/{programme['id']}/enrolments"
    # Another merchant's account cannot be enrolled, nor can another merchant enrol into my programme.
    assert (
        await portal.post(path, json={"account_id": their_account["id"]}, headers=mine.as_merchant)
    ).status_code == 404
    assert (
        await portal.post(path, json={"account_id": their_account["id"]}, headers=theirs.as_merchant)
    ).status_code == 404
    assert (await portal.post(path, json={"account_id": my_account["id"]}, headers=mine.as_merchant)).status_code == 201
    bad = await portal.post("/credit-programmes", json={**body, "period": "yearly"}, headers=mine.as_merchant)
    assert bad.status_code == 422
