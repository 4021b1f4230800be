"""Offline store-and-forward at the HTTP boundary (API.md v1.1): terminal-generated ids unique per merchant in the
database, `POST /sync` with per-entry transactions and results, the merchant's offline limits, and card payments
taken offline forwarded to the gateway (and possibly declined) at sync."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy import text

from smartpos_shared.ids import new_id
from tests.portal.helpers import bill, ring_up, webhook
from tests.portal.test_refunds_and_voids import assert_money_invariants, code
from tests.support.portal_fixtures import MakeTenant, Tenant


def cid(kind: str) -> str:
    return f"till1-{kind}-{uuid.uuid4().hex[:12]}"


def entry(
    tenant: Tenant,
    payments: list[tuple[str, int]],
    *,
    quantities: tuple[int, ...] = (1, 1),
    age: timedelta = timedelta(minutes=30),
) -> dict[str, Any]:
    """An order the terminal took offline `age` ago (500 + 700 = 1,200 at (1, 1)) with its tenders."""
    return {
        "client_order_id": cid("ord"),
        "taken_at": (datetime.now(UTC) - age).isoformat(),
        "items": [{"product_id": p["id"], "quantity": q} for p, q in zip(tenant.products, quantities, strict=False)],
        "payments": [{"client_payment_id": cid("pay"), "method": m, "amount": a} for m, a in payments],
    }


async def sync(portal: httpx.AsyncClient, tenant: Tenant, entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    response = await portal.post(
        "/sync", json={"orders": entries}, headers={**tenant.as_device, "Idempotency-Key": uuid.uuid4().hex}
    )
    assert response.status_code == 200, response.text
    results: list[dict[str, Any]] = response.json()["results"]
    assert [r["client_order_id"] for r in results] == [e["client_order_id"] for e in entries]
    return results


async def counts(app: FastAPI, merchant_id: str) -> tuple[int, int]:
    async with app.state.engine.connect() as conn:
        orders = await conn.scalar(
            text("SELECT count(*) FROM orders WHERE merchant_id = :m AND client_order_id IS NOT NULL"),
            {"m": merchant_id},
        )
        payments = await conn.scalar(
            text("SELECT count(*) FROM payments WHERE merchant_id = :m AND client_payment_id IS NOT NULL"),
            {"m": merchant_id},
        )
    return int(orders), int(payments)


async def test_a_client_order_id_never_creates_a_second_order(
    portal: httpx.AsyncClient, tenant: Tenant, make_tenant: MakeTenant
) -> None:
    items = [{"product_id": tenant.products[0]["id"], "quantity": 2}]
    body = {"items": items, "client_order_id": cid("ord")}
    first = await portal.post("/orders", json=body, headers={**tenant.as_device, "Idempotency-Key": "k1"})
    assert first.status_code == 201 and first.json()["client_order_id"] == body["client_order_id"]
    again = await portal.post("/orders", json=body, headers={**tenant.as_device, "Idempotency-Key": "k2"})
    assert again.status_code == 200 and again.json()["id"] == first.json()["id"]
    replay = await portal.post("/orders", json=body, headers={**tenant.as_device, "Idempotency-Key": "k2"})
    assert replay.status_code == 200 and replay.json()["id"] == first.json()["id"]  # the key's stored answer
    other = await portal.post(
        "/orders", json={**body, "items": [{**items[0], "quantity": 3}]}, headers=tenant.as_device
    )
    assert other.status_code == 409 and code(other) == "client_id_conflict"
    stranger = await make_tenant()
    theirs = await portal.post(
        "/orders",
        json={**body, "items": [{"product_id": stranger.products[0]["id"], "quantity": 2}]},
        headers=stranger.as_device,
    )
    assert theirs.status_code == 201  # unique per merchant, not across merchants


async def test_a_client_payment_id_never_creates_a_second_payment(portal: httpx.AsyncClient, tenant: Tenant) -> None:
    order = await ring_up(portal, tenant)
    b = await bill(portal, tenant, order["id"])
    body = {"bill_id": b["id"], "amount": 500, "method": "cash", "client_payment_id": cid("pay")}
    responses = await asyncio.gather(*(portal.post("/payments", json=body, headers=tenant.as_device) for _ in range(5)))
    assert sorted(r.status_code for r in responses) == [200, 200, 200, 200, 201]
    assert len({r.json()["id"] for r in responses}) == 1
    paid = (await portal.get(f"/bills/{b['id']}", headers=tenant.as_device)).json()
    assert paid["paid_amount"] == 500
    conflict = await portal.post("/payments", json={**body, "amount": 600}, headers=tenant.as_device)
    assert conflict.status_code == 409 and code(conflict) == "client_id_conflict"


async def test_a_batch_forwarded_three_times_creates_everything_exactly_once(
    portal: httpx.AsyncClient, portal_app: FastAPI, tenant: Tenant
) -> None:
    """A terminal reconnecting forwards the same batch three times at once, each with a fresh Idempotency-Key."""
    batch = [
        entry(tenant, [("cash", 1200)]),
        entry(tenant, [("card", 700), ("cash", 500)]),
        entry(tenant, []),  # rung up, not paid yet
        {**entry(tenant, [("cash", 100)]), "items": [{"product_id": new_id("prd"), "quantity": 1}]},
    ]
    rounds = await asyncio.gather(*(sync(portal, tenant, batch) for _ in range(3)))
    for results in rounds:
        assert results[3] == {
            "client_order_id": batch[3]["client_order_id"],
            "status": "rejected",
            "reason": "unknown_product",
        }
    for i in range(3):
        statuses = sorted(results[i]["status"] for results in rounds)
        assert statuses == ["created", "duplicate", "duplicate"], statuses
        assert len({results[i]["order_id"] for results in rounds}) == 1
    assert await counts(portal_app, tenant.merchant_id) == (3, 3)
    paid = (await portal.get(f"/orders/{rounds[0][0]['order_id']}", headers=tenant.as_device)).json()
    assert paid["status"] == "completed" and paid["client_order_id"] == batch[0]["client_order_id"]
    assert paid["taken_at"] is not None
    split = (await portal.get(f"/orders/{rounds[0][1]['order_id']}", headers=tenant.as_device)).json()
    assert split["status"] == "open"  # the card part waits for the gateway
    payments = (await portal.get("/payments?status=pending", headers=tenant.as_merchant)).json()["items"]
    card = next(p for p in payments if p["order_id"] == split["id"])
    assert card["taken_offline"] is True and card["pgw_reference"].startswith("pgwref_")
    # The same id with other content later: refused, and the original stands.
    changed = {**batch[0], "payments": [{**batch[0]["payments"][0], "amount": 1100}]}
    (result,) = await sync(portal, tenant, [changed])
    assert result["status"] == "rejected" and result["reason"] == "client_id_conflict"
    await assert_money_invariants(portal_app, tenant.merchant_id)


async def test_a_card_declined_at_sync_leaves_the_order_open_with_what_is_due(
    portal: httpx.AsyncClient, portal_app: FastAPI, tenant: Tenant
) -> None:
    sent = entry(tenant, [("cash", 200), ("card", 1000)])
    (result,) = await sync(portal, tenant, [sent])
    assert result["status"] == "created"
    order_id = result["order_id"]
    pending = (await portal.get("/payments?status=pending", headers=tenant.as_merchant)).json()["items"]
    card = next(p for p in pending if p["order_id"] == order_id)
    declined = await webhook(portal, new_id("evt"), card["pgw_reference"], 1000, "payment.failed")
    assert declined.status_code == 200
    order = (await portal.get(f"/orders/{order_id}", headers=tenant.as_device)).json()
    b = (await portal.get(f"/bills/{card['bill_id']}", headers=tenant.as_device)).json()
    assert order["status"] == "open"
    assert b["status"] == "partially_paid" and b["total_amount"] - b["paid_amount"] == 1000
    # What is due can be paid now, online.
    again = await portal.post(
        "/payments", json={"bill_id": b["id"], "amount": 1000, "method": "cash"}, headers=tenant.as_device
    )
    assert again.status_code == 201
    # The terminal forwards the same entry again (it never saw the answer): still the same sale, a duplicate.
    (resent,) = await sync(portal, tenant, [sent])
    assert resent == {"client_order_id": sent["client_order_id"], "status": "duplicate", "order_id": order_id}
    await assert_money_invariants(portal_app, tenant.merchant_id)


async def test_offline_limits_refuse_what_is_over_them_with_the_reason(
    portal: httpx.AsyncClient, tenant: Tenant, make_tenant: MakeTenant
) -> None:
    limits = {"offline_max_payment_amount": 1000, "offline_max_outstanding_amount": 1500, "offline_max_age_hours": 2}
    updated = await portal.patch(f"/merchants/{tenant.merchant_id}", json=limits, headers=tenant.as_merchant)
    assert updated.status_code == 200 and {k: updated.json()[k] for k in limits} == limits
    results = await sync(
        portal,
        tenant,
        [
            entry(tenant, [("card", 1200)]),  # one payment above 1,000
            entry(tenant, [("cash", 1200)], age=timedelta(hours=3)),  # taken too long ago
            entry(tenant, [("cash", 200), ("card", 1000)]),  # 1,000 outstanding on this terminal
            entry(tenant, [("cash", 500), ("card", 700)]),  # would make it 1,700
            entry(tenant, [("cash", 1200)]),  # cash needs no gateway: within every limit
            {**entry(tenant, [("cash", 1200)]), "taken_at": (datetime.now(UTC) + timedelta(hours=1)).isoformat()},
        ],
    )
    assert [(r["status"], r.get("reason")) for r in results] == [
        ("rejected", "over_offline_max_payment_amount"),
        ("rejected", "offline_too_old"),
        ("created", None),
        ("rejected", "over_offline_max_outstanding_amount"),
        ("created", None),
        ("rejected", "taken_at_in_future"),
    ]
    # Once the gateway confirms the outstanding card payment, the terminal has room again.
    pending = (await portal.get("/payments?status=pending", headers=tenant.as_merchant)).json()["items"]
    (card,) = [p for p in pending if p["order_id"] == results[2]["order_id"]]
    assert (await webhook(portal, new_id("evt"), card["pgw_reference"], 1000)).status_code == 200
    (retry,) = await sync(portal, tenant, [entry(tenant, [("cash", 500), ("card", 700)])])
    assert retry["status"] == "created"
    # Who may change the limits and forward offline sales.
    stranger = await make_tenant()
    for response in (
        await portal.patch(f"/merchants/{tenant.merchant_id}", json=limits, headers=stranger.as_merchant),
        await portal.patch(f"/merchants/{tenant.merchant_id}", json=limits, headers=tenant.as_device),
    ):
        assert response.status_code == 404
    bad = await portal.patch(
        f"/merchants/{tenant.merchant_id}", json={"offline_max_age_hours": 0}, headers=tenant.as_merchant
    )
    assert bad.status_code == 422
    as_merchant = await portal.post("/sync", json={"orders": [entry(tenant, [])]}, headers=tenant.as_merchant)
    assert as_merchant.status_code == 403


async def test_a_client_id_taken_in_a_store_the_caller_cannot_see_is_a_conflict(
    portal: httpx.AsyncClient, tenant: Tenant
) -> None:
    """Ids are unique per merchant: the device of one store reusing an id its merchant used in another store gets
    409, not the other store's payment (which it may not see) and not a retry-later error."""
    items = [{"product_id": tenant.products[0]["id"], "quantity": 1}]
    elsewhere = await portal.post(
        "/orders", json={"store_id": tenant.other_store_id, "items": items}, headers=tenant.as_merchant
    )
    other_bill = (
        await portal.post("/bills", json={"order_id": elsewhere.json()["id"]}, headers=tenant.as_merchant)
    ).json()
    taken = cid("pay")
    body = {"bill_id": other_bill["id"], "amount": 500, "method": "cash", "client_payment_id": taken}
    assert (await portal.post("/payments", json=body, headers=tenant.as_merchant)).status_code == 201
    order = await ring_up(portal, tenant)
    b = await bill(portal, tenant, order["id"])
    mine = await portal.post(
        "/payments",
        json={"bill_id": b["id"], "amount": 500, "method": "cash", "client_payment_id": taken},
        headers=tenant.as_device,
    )
    assert mine.status_code == 409 and code(mine) == "client_id_conflict", mine.text
    reused_order = await portal.post(
        "/orders",
        json={"store_id": tenant.other_store_id, "items": items, "client_order_id": "shared-1"},
        headers=tenant.as_merchant,
    )
    assert reused_order.status_code == 201
    theirs = await portal.post(
        "/orders", json={"items": items, "client_order_id": "shared-1"}, headers=tenant.as_device
    )
    assert theirs.status_code == 409 and code(theirs) == "client_id_conflict"


async def test_sync_bodies_are_as_documented_strict_times_and_the_largest_batch_fits_the_body_limit(
    portal: httpx.AsyncClient, tenant: Tenant
) -> None:
    """Found by `make fuzz`: `taken_at: 0` was read as a Unix time (the schema says an RFC 3339 string), and a
    valid batch could exceed the 64 KiB body limit (413)."""
    numeric = {**entry(tenant, []), "taken_at": 0}
    response = await portal.post("/sync", json={"orders": [numeric]}, headers=tenant.as_device)
    assert response.status_code == 422
    largest = {
        "orders": [
            {
                "client_order_id": "o" * 64,
                "taken_at": "2026-11-23T10:00:00.123456+09:00",
                "items": [{"product_id": new_id("prd"), "quantity": 10_000}] * 50,
                "payments": [
                    {"client_payment_id": "p" * 64, "method": "card", "amount": 10**12, "offline_auth": "A" * 128}
                ]
                * 5,
            }
        ]
        * 10
    }
    assert len(json.dumps(largest).encode()) < 64 * 1024
    assert (await portal.post("/sync", json=largest, headers=tenant.as_device)).status_code in (200, 422)


async def test_names_are_checked_as_sent_then_stripped(portal: httpx.AsyncClient, tenant: Tenant) -> None:
    """Found by `make fuzz`: a 201-character name with a leading space passed (stripped to 200 before the check)."""
    too_long = await portal.post("/stores", json={"name": " " + "a" * 200}, headers=tenant.as_merchant)
    blank = await portal.post("/stores", json={"name": "   "}, headers=tenant.as_merchant)
    kept = await portal.post("/stores", json={"name": "  Ueno 2  "}, headers=tenant.as_merchant)
    assert (too_long.status_code, blank.status_code, kept.status_code) == (422, 422, 201)
    assert kept.json()["name"] == "Ueno 2"
