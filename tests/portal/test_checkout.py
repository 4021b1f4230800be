"""The commerce core through HTTP: order → bill → payments → gateway webhook → paid → completed."""

from __future__ import annotations

import uuid

import httpx
from fastapi import FastAPI
from sqlalchemy import text

from tests.portal.helpers import bill, pay, ring_up, webhook
from tests.support.portal_fixtures import Tenant


async def test_payment_flow_from_open_order_to_completed(portal: httpx.AsyncClient, tenant: Tenant) -> None:
    order = await ring_up(portal, tenant, (2, 1))
    assert order["status"] == "open" and order["version"] == 1
    assert order["total_amount"] == 2 * 500 + 700 == 1700 and order["currency"] == "JPY"
    assert [(i["quantity"], i["unit_price"], i["line_total"]) for i in order["items"]] == [
        (2, 500, 1000),
        (1, 700, 700),
    ]

    b = await bill(portal, tenant, order["id"])
    assert (b["status"], b["total_amount"], b["paid_amount"], b["paid_at"]) == ("unpaid", 1700, 0, None)

    payment = await pay(portal, tenant, b["id"], 1700, "card")
    assert payment.status_code == 201, payment.text
    payment_body = payment.json()
    assert payment_body["status"] == "pending" and payment_body["pgw_reference"]

    confirmed = await webhook(portal, f"evt_{uuid.uuid4().hex}", payment_body["pgw_reference"], 1700)
    assert confirmed.status_code == 200, confirmed.text

    got = (await portal.get(f"/payments/{payment_body['id']}", headers=tenant.as_device)).json()
    assert got["status"] == "succeeded"
    paid = (await portal.get(f"/bills/{b['id']}", headers=tenant.as_device)).json()
    assert paid["status"] == "paid" and paid["paid_amount"] == 1700 and paid["paid_at"] is not None
    done = (await portal.get(f"/orders/{order['id']}", headers=tenant.as_device)).json()
    assert done["status"] == "completed" and done["completed_at"] is not None and done["version"] == 2


async def test_split_tender_cash_then_card(portal: httpx.AsyncClient, tenant: Tenant) -> None:
    order = await ring_up(portal, tenant)  # 1200
    b = await bill(portal, tenant, order["id"])
    cash = await pay(portal, tenant, b["id"], 500, "cash")
    assert cash.status_code == 201 and cash.json()["status"] == "succeeded" and cash.json()["pgw_reference"] is None
    partial = (await portal.get(f"/bills/{b['id']}", headers=tenant.as_device)).json()
    assert (partial["status"], partial["paid_amount"], partial["paid_at"]) == ("partially_paid", 500, None)

    too_much = await pay(portal, tenant, b["id"], 701, "card")
    assert too_much.status_code == 422 and too_much.json()["remaining_amount"] == 700

    card = (await pay(portal, tenant, b["id"], 700, "qr")).json()
    # While the card is pending, nothing remains to be paid: no second payment for the last yen.
    assert (await pay(portal, tenant, b["id"], 1, "cash")).status_code == 422
    assert (await webhook(portal, f"evt_{uuid.uuid4().hex}", card["pgw_reference"], 700)).status_code == 200
    paid = (await portal.get(f"/bills/{b['id']}", headers=tenant.as_device)).json()
    assert (paid["status"], paid["paid_amount"]) == ("paid", 1200) and paid["paid_at"]
    assert (await portal.get(f"/orders/{order['id']}", headers=tenant.as_device)).json()["status"] == "completed"
    # A paid bill takes no more payments.
    assert (await pay(portal, tenant, b["id"], 1, "cash")).status_code == 409


async def test_a_failed_card_frees_the_amount_for_another_payment(portal: httpx.AsyncClient, tenant: Tenant) -> None:
    order = await ring_up(portal, tenant)
    b = await bill(portal, tenant, order["id"])
    card = (await pay(portal, tenant, b["id"], 1200)).json()
    declined = await webhook(portal, f"evt_{uuid.uuid4().hex}", card["pgw_reference"], 1200, "payment.failed")
    assert declined.status_code == 200
    failed = (await portal.get(f"/payments/{card['id']}", headers=tenant.as_device)).json()
    assert failed["status"] == "failed" and failed["failure_reason"]
    assert (await portal.get(f"/bills/{b['id']}", headers=tenant.as_device)).json()["status"] == "unpaid"
    assert (await pay(portal, tenant, b["id"], 1200, "cash")).json()["status"] == "succeeded"


async def test_order_state_machine(portal: httpx.AsyncClient, tenant: Tenant) -> None:
    order = await ring_up(portal, tenant)
    b = await bill(portal, tenant, order["id"])
    assert (await portal.post("/bills", json={"order_id": order["id"]}, headers=tenant.as_device)).status_code == 409
    canceled = await portal.patch(f"/orders/{order['id']}", json={"status": "canceled"}, headers=tenant.as_device)
    assert canceled.status_code == 200 and canceled.json()["status"] == "canceled"
    assert (await portal.get(f"/bills/{b['id']}", headers=tenant.as_device)).json()["status"] == "void"
    for status in ("completed", "canceled"):
        again = await portal.patch(f"/orders/{order['id']}", json={"status": status}, headers=tenant.as_device)
        assert again.status_code == 409 and again.headers["content-type"] == "application/problem+json"
    assert (await portal.post("/bills", json={"order_id": order["id"]}, headers=tenant.as_device)).status_code == 409
    assert (await pay(portal, tenant, b["id"], 100, "cash")).status_code == 409


async def test_an_order_with_payments_cannot_be_canceled(portal: httpx.AsyncClient, tenant: Tenant) -> None:
    order = await ring_up(portal, tenant)
    b = await bill(portal, tenant, order["id"])
    pending = (await pay(portal, tenant, b["id"], 200)).json()
    assert (
        await portal.patch(f"/orders/{order['id']}", json={"status": "canceled"}, headers=tenant.as_device)
    ).status_code == 409
    await webhook(portal, f"evt_{uuid.uuid4().hex}", pending["pgw_reference"], 200)
    response = await portal.patch(f"/orders/{order['id']}", json={"status": "canceled"}, headers=tenant.as_device)
    assert response.status_code == 409 and response.json()["type"].endswith("bill_has_payments")


async def test_every_transition_writes_its_events_to_the_outbox(
    portal: httpx.AsyncClient, portal_app: FastAPI, tenant: Tenant
) -> None:
    order = await ring_up(portal, tenant)
    b = await bill(portal, tenant, order["id"])
    await pay(portal, tenant, b["id"], 1200, "cash")
    async with portal_app.state.engine.connect() as conn:
        rows = (
            await conn.execute(
                text(
                    "SELECT type, subject, version FROM outbox WHERE merchant_id = :m AND type <> 'store.created'"
                    " ORDER BY position"
                ),
                {"m": tenant.merchant_id},
            )
        ).all()
    assert [(r.type, r.version) for r in rows] == [
        ("order.created", 1),
        ("bill.created", 1),
        ("payment.created", 1),
        ("payment.succeeded", 2),
        ("bill.paid", 2),
        ("order.updated", 2),
    ]


async def test_a_new_store_is_announced_with_its_owner(
    portal: httpx.AsyncClient, portal_app: FastAPI, tenant: Tenant
) -> None:
    async with portal_app.state.engine.connect() as conn:
        row = (
            await conn.execute(
                text("SELECT merchant_id, store_id, payload FROM outbox WHERE type = 'store.created' AND subject = :s"),
                {"s": tenant.store_id},
            )
        ).one()
    assert (row.merchant_id, row.store_id) == (tenant.merchant_id, tenant.store_id)
    assert row.payload["data"]["id"] == tenant.store_id and row.payload["data"]["merchant_id"] == tenant.merchant_id
