"""Store credit at the HTTP boundary, against the real PostgreSQL: accounts, the append-only ledger with
`balance_after`, payment method `credit` redeemed in the payment's own transaction (never overdrawn, also by 30
payments at once), refunds back to the account, tenancy."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from tests.portal.helpers import bill, ring_up
from tests.support.portal_fixtures import MakeTenant, Tenant


def code(response: httpx.Response) -> str:
    return str(response.json()["type"]).rsplit("/", 1)[-1]


def keyed(headers: dict[str, str]) -> dict[str, str]:
    return {**headers, "Idempotency-Key": uuid.uuid4().hex}


async def account_with(portal: httpx.AsyncClient, tenant: Tenant, amount: int) -> dict[str, Any]:
    account = await portal.post("/credit-accounts", json={"customer_ref": uuid.uuid4().hex}, headers=tenant.as_merchant)
    assert account.status_code == 201, account.text
    loaded = await portal.post(
        f"/credit-accounts/{account.json()['id']}/entries",
        json={"kind": "load", "amount": amount, "note": "gift card"},
        headers=keyed(tenant.as_merchant),
    )
    assert loaded.status_code == 201, loaded.text
    assert loaded.json()["balance_after"] == amount
    return account.json()  # type: ignore[no-any-return]


async def pay_credit(
    portal: httpx.AsyncClient, tenant: Tenant, bill_id: str, amount: int, account_id: str
) -> httpx.Response:
    return await portal.post(
        "/payments",
        json={"bill_id": bill_id, "amount": amount, "method": "credit", "credit_account_id": account_id},
        headers=tenant.as_device,
    )


async def balance(portal: httpx.AsyncClient, tenant: Tenant, account_id: str) -> int:
    return int((await portal.get(f"/credit-accounts/{account_id}", headers=tenant.as_merchant)).json()["balance"])


async def test_a_credit_payment_redeems_and_its_refund_goes_back_to_the_account(
    portal: httpx.AsyncClient, tenant: Tenant
) -> None:
    account = await account_with(portal, tenant, 5_000)
    order = await ring_up(portal, tenant)  # 500 + 700
    b = await bill(portal, tenant, order["id"])
    paid = await pay_credit(portal, tenant, b["id"], 1_200, account["id"])
    assert paid.status_code == 201, paid.text
    payment = paid.json()
    assert (payment["method"], payment["status"], payment["pgw_reference"]) == ("credit", "succeeded", None)
    assert (await portal.get(f"/orders/{order['id']}", headers=tenant.as_device)).json()["status"] == "completed"
    assert await balance(portal, tenant, account["id"]) == 3_800

    refund = await portal.post(
        "/refunds", json={"payment_id": payment["id"], "amount": 200}, headers=keyed(tenant.as_device)
    )
    assert refund.status_code == 201, refund.text
    assert refund.json()["status"] == "succeeded"
    assert await balance(portal, tenant, account["id"]) == 4_000
    entries = (await portal.get(f"/credit-accounts/{account['id']}/entries", headers=tenant.as_merchant)).json()
    assert [(e["kind"], e["amount"], e["balance_after"]) for e in reversed(entries["items"])] == [
        ("load", 5_000, 5_000),
        ("redeem", -1_200, 3_800),
        ("refund", 200, 4_000),
    ]
    assert entries["items"][0]["refund_id"] == refund.json()["id"]


async def test_thirty_credit_payments_at_once_never_overdraw(
    portal: httpx.AsyncClient, portal_app: FastAPI, tenant: Tenant
) -> None:
    account = await account_with(portal, tenant, 10_000)
    bills = []
    for _ in range(30):
        order = await ring_up(portal, tenant, (1,))  # 500 each
        bills.append(await bill(portal, tenant, order["id"]))
    responses = await asyncio.gather(*(pay_credit(portal, tenant, b["id"], 500, account["id"]) for b in bills))
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [201] * 20 + [422] * 10, [r.text for r in responses if r.status_code not in (201, 422)]
    assert {code(r) for r in responses if r.status_code == 422} == {"insufficient_credit"}
    assert await balance(portal, tenant, account["id"]) == 0
    async with portal_app.state.engine.connect() as conn:
        # The ledger adds up: entries sum to the balance, each balance_after is the running sum, no payment
        # exists without its redemption.
        rows = (
            await conn.execute(
                text(
                    "SELECT amount, balance_after FROM credit_entries WHERE account_id = :a ORDER BY balance_after DESC"
                ),
                {"a": account["id"]},
            )
        ).all()
        assert sum(r.amount for r in rows) == 0 and sorted(r.balance_after for r in rows) == list(range(0, 10_001, 500))
        orphans = await conn.scalar(
            text(
                "SELECT count(*) FROM payments p WHERE p.merchant_id = :m AND p.method = 'credit' AND NOT EXISTS"
                " (SELECT 1 FROM credit_entries e WHERE e.payment_id = p.id AND e.kind = 'redeem')"
            ),
            {"m": tenant.merchant_id},
        )
        assert orphans == 0


async def test_the_ledger_is_append_only_and_balances_never_go_negative(
    portal: httpx.AsyncClient, portal_app: FastAPI, tenant: Tenant
) -> None:
    account = await account_with(portal, tenant, 100)
    too_much = await portal.post(
        f"/credit-accounts/{account['id']}/entries",
        json={"kind": "adjust", "amount": -101},
        headers=keyed(tenant.as_merchant),
    )
    assert too_much.status_code == 422 and code(too_much) == "insufficient_credit"
    async with portal_app.state.engine.connect() as conn:
        for statement in (
            "UPDATE credit_entries SET amount = 1 WHERE account_id = :a",
            "DELETE FROM credit_entries WHERE account_id = :a",
        ):
            with pytest.raises(DBAPIError, match="append-only"):
                await conn.execute(text(statement), {"a": account["id"]})
            await conn.rollback()
        with pytest.raises(DBAPIError, match="balance_not_negative"):
            await conn.execute(text("UPDATE credit_accounts SET balance = -1 WHERE id = :a"), {"a": account["id"]})
        await conn.rollback()


async def test_credit_is_tenant_isolated_and_refused_where_it_cannot_work(
    portal: httpx.AsyncClient, make_tenant: MakeTenant
) -> None:
    mine, theirs = await make_tenant(), await make_tenant()
    account = await account_with(portal, mine, 5_000)
    their_bill = await bill(portal, theirs, (await ring_up(portal, theirs))["id"])
    stolen = await pay_credit(portal, theirs, their_bill["id"], 500, account["id"])
    assert stolen.status_code == 404  # another merchant's account does not exist for them
    assert (await portal.get(f"/credit-accounts/{account['id']}", headers=theirs.as_merchant)).status_code == 404
    assert await balance(portal, mine, account["id"]) == 5_000
    no_account = await portal.post(
        "/payments", json={"bill_id": their_bill["id"], "amount": 500, "method": "credit"}, headers=theirs.as_device
    )
    assert no_account.status_code == 422
    device_load = await portal.post(
        f"/credit-accounts/{account['id']}/entries", json={"kind": "load", "amount": 5}, headers=keyed(mine.as_device)
    )
    assert device_load.status_code == 403
    offline = await portal.post(
        "/sync",
        json={
            "orders": [
                {
                    "client_order_id": uuid.uuid4().hex,
                    "taken_at": "2026-11-23T10:00:00Z",
                    "items": [{"product_id": mine.products[0]["id"], "quantity": 1}],
                    "payments": [{"client_payment_id": uuid.uuid4().hex, "method": "credit", "amount": 500}],
                }
            ]
        },
        headers=mine.as_device,
    )
    assert offline.status_code == 422  # an offline terminal cannot know a balance
