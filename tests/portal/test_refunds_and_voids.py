"""Refunds and voids at the HTTP boundary (API.md v1.1), against the real PostgreSQL: the refund cap under races,
settlement by the gateway's webhook, voids racing the gateway's capture, and the money invariants afterwards,
checked in the database itself."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import httpx
import yaml
from fastapi import FastAPI
from sqlalchemy import text

from smartpos_shared.ids import new_id
from tests.portal.helpers import bill, pay, ring_up, webhook
from tests.support.portal_fixtures import MakeTenant, Tenant

ASYNCAPI = Path(__file__).resolve().parents[2] / "docs" / "asyncapi.yaml"


def code(response: httpx.Response) -> str:
    """The problem's stable code: the last segment of its `type` URI."""
    return str(response.json()["type"]).rsplit("/", 1)[-1]


async def refund(
    portal: httpx.AsyncClient, tenant: Tenant, payment_id: str, amount: int, **extra: Any
) -> httpx.Response:
    return await portal.post(
        "/refunds",
        json={"payment_id": payment_id, "amount": amount, **extra},
        headers={**tenant.as_device, "Idempotency-Key": uuid.uuid4().hex},
    )


async def paid_by_card(portal: httpx.AsyncClient, tenant: Tenant) -> tuple[dict[str, Any], dict[str, Any]]:
    """A completed order paid in full by one card payment confirmed by the gateway: (bill, payment)."""
    order = await ring_up(portal, tenant)
    b = await bill(portal, tenant, order["id"])
    payment = (await pay(portal, tenant, b["id"], b["total_amount"])).json()
    response = await webhook(portal, new_id("evt"), payment["pgw_reference"], payment["amount"])
    assert response.status_code == 200, response.text
    return b, payment


async def assert_money_invariants(app: FastAPI, merchant_id: str) -> None:
    """What must hold for every bill and payment of the merchant, whatever raced: read in one snapshot."""
    async with app.state.engine.connect() as conn:
        bad_payments = await conn.scalar(
            text(
                """SELECT count(*) FROM payments p WHERE p.merchant_id = :m AND (
                     p.refunded_amount <> (SELECT coalesce(sum(amount), 0) FROM refunds r
                                             WHERE r.payment_id = p.id AND r.status = 'succeeded')
                  OR p.refund_pending_amount <> (SELECT coalesce(sum(amount), 0) FROM refunds r
                                                   WHERE r.payment_id = p.id AND r.status = 'pending')
                  OR p.refunded_amount + p.refund_pending_amount > p.amount)"""
            ),
            {"m": merchant_id},
        )
        bad_bills = await conn.scalar(
            text(
                """SELECT count(*) FROM bills b WHERE b.merchant_id = :m AND (
                     b.paid_amount <> (SELECT coalesce(sum(amount), 0) FROM payments p
                                         WHERE p.bill_id = b.id AND p.status = 'succeeded')
                  OR b.paid_amount > b.total_amount
                  OR b.refunded_amount > b.paid_amount
                  OR b.refunded_amount <> (SELECT coalesce(sum(r.amount), 0) FROM refunds r
                                             JOIN payments p ON p.id = r.payment_id
                                            WHERE r.bill_id = b.id AND r.status = 'succeeded'
                                              AND p.status = 'succeeded'))"""
            ),
            {"m": merchant_id},
        )
        bad_orders = await conn.scalar(
            text(
                """SELECT count(*) FROM orders o JOIN bills b ON b.order_id = o.id AND b.status <> 'void'
                    WHERE o.merchant_id = :m AND o.refunded_amount <> b.refunded_amount"""
            ),
            {"m": merchant_id},
        )
    assert (bad_payments, bad_bills, bad_orders) == (0, 0, 0)


async def test_cash_refunds_are_partial_repeated_and_capped(portal: httpx.AsyncClient, tenant: Tenant) -> None:
    order = await ring_up(portal, tenant)
    b = await bill(portal, tenant, order["id"])
    payment = (await pay(portal, tenant, b["id"], b["total_amount"], "cash")).json()
    first = await refund(portal, tenant, payment["id"], 300, reason="damaged cup")
    assert first.status_code == 201, first.text
    body = first.json()
    assert body["status"] == "succeeded" and body["method"] == "cash" and body["amount"] == 300
    assert body["payment_id"] == payment["id"] and body["bill_id"] == b["id"] and body["order_id"] == order["id"]
    assert body["reason"] == "damaged cup" and body["pgw_reference"] is None
    over = await refund(portal, tenant, payment["id"], b["total_amount"] - 300 + 1)
    assert over.status_code == 422 and code(over) == "refund_exceeds_payment"
    assert over.json()["refundable_amount"] == b["total_amount"] - 300
    rest = await refund(portal, tenant, payment["id"], b["total_amount"] - 300)
    assert rest.status_code == 201 and rest.json()["status"] == "succeeded"
    assert (await refund(portal, tenant, payment["id"], 1)).status_code == 422
    for path in (f"/bills/{b['id']}", f"/orders/{order['id']}"):
        assert (await portal.get(path, headers=tenant.as_device)).json()["refunded_amount"] == b["total_amount"]
    paid = (await portal.get(f"/payments/{payment['id']}", headers=tenant.as_device)).json()
    assert paid["refunded_amount"] == b["total_amount"] and paid["refund_pending_amount"] == 0
    listed = (await portal.get(f"/refunds?payment_id={payment['id']}", headers=tenant.as_merchant)).json()
    assert [r["id"] for r in listed["items"]] == [rest.json()["id"], body["id"]]
    assert (await portal.get(f"/refunds/{body['id']}", headers=tenant.as_merchant)).json() == body


async def test_card_refund_is_settled_by_the_gateway_webhook(
    portal: httpx.AsyncClient, portal_app: FastAPI, tenant: Tenant
) -> None:
    b, payment = await paid_by_card(portal, tenant)
    created = await refund(portal, tenant, payment["id"], 400)
    assert created.status_code == 201, created.text
    pending = created.json()
    assert pending["status"] == "pending" and pending["pgw_reference"].startswith("pgwref_")
    during = (await portal.get(f"/payments/{payment['id']}", headers=tenant.as_device)).json()
    assert during["refund_pending_amount"] == 400 and during["refunded_amount"] == 0
    assert (await portal.get(f"/bills/{b['id']}", headers=tenant.as_device)).json()["refunded_amount"] == 0
    event_id = new_id("evt")
    settled = await webhook(portal, event_id, pending["pgw_reference"], 400, "refund.succeeded")
    assert settled.status_code == 200 and settled.json()["outcome"] == "refund.succeeded"
    again = await webhook(portal, event_id, pending["pgw_reference"], 400, "refund.succeeded")
    assert again.status_code == 200 and again.json()["outcome"] == "duplicate"
    done = (await portal.get(f"/refunds/{pending['id']}", headers=tenant.as_device)).json()
    assert done["status"] == "succeeded" and done["version"] == 2
    assert (await portal.get(f"/bills/{b['id']}", headers=tenant.as_device)).json()["refunded_amount"] == 400
    order = (await portal.get(f"/orders/{b['order_id']}", headers=tenant.as_device)).json()
    assert order["refunded_amount"] == 400 and order["status"] == "completed"
    # A declined refund gives its amount back: the rest of the payment is refundable again.
    second = (await refund(portal, tenant, payment["id"], payment["amount"] - 400)).json()
    mismatch = await webhook(portal, new_id("evt"), second["pgw_reference"], 1, "refund.succeeded")
    assert mismatch.status_code == 422 and code(mismatch) == "amount_mismatch"
    declined = await webhook(portal, new_id("evt"), second["pgw_reference"], second["amount"], "refund.failed")
    assert declined.status_code == 200
    failed = (await portal.get(f"/refunds/{second['id']}", headers=tenant.as_device)).json()
    assert failed["status"] == "failed" and failed["failure_reason"] == "declined_by_gateway"
    assert (await refund(portal, tenant, payment["id"], payment["amount"] - 400)).status_code == 201
    async with portal_app.state.engine.connect() as conn:
        types = (
            await conn.scalars(
                text("SELECT type FROM outbox WHERE subject = :r ORDER BY position"), {"r": pending["id"]}
            )
        ).all()
        order_totals = await conn.scalar(
            text(
                "SELECT payload->'data'->>'refunded_amount' FROM outbox WHERE subject = :o AND type = 'order.updated'"
                " ORDER BY position DESC LIMIT 1"
            ),
            {"o": b["order_id"]},
        )
    assert types == ["refund.created", "refund.succeeded"]
    assert order_totals == "400"  # the dashboard feed and smarttab's live view learn the new totals
    await assert_money_invariants(portal_app, tenant.merchant_id)


async def test_thirty_concurrent_partial_refunds_never_exceed_the_payment(
    portal: httpx.AsyncClient, portal_app: FastAPI, tenant: Tenant
) -> None:
    order = await ring_up(portal, tenant)
    b = await bill(portal, tenant, order["id"])
    payment = (await pay(portal, tenant, b["id"], b["total_amount"], "cash")).json()
    share = 100  # 30 x 100 = 3,000 asked for a 1,200 payment
    responses = await asyncio.gather(*(refund(portal, tenant, payment["id"], share) for _ in range(30)))
    statuses = [r.status_code for r in responses]
    assert set(statuses) <= {201, 422}, statuses
    assert statuses.count(201) == b["total_amount"] // share, statuses
    assert all(code(r) == "refund_exceeds_payment" for r in responses if r.status_code == 422)
    async with portal_app.state.engine.connect() as conn:
        total = await conn.scalar(
            text("SELECT sum(amount) FROM refunds WHERE payment_id = :p AND status <> 'failed'"), {"p": payment["id"]}
        )
    assert total == b["total_amount"]
    await assert_money_invariants(portal_app, tenant.merchant_id)


async def test_card_refunds_racing_their_webhooks_settle_each_exactly_once(
    portal: httpx.AsyncClient, portal_app: FastAPI, tenant: Tenant
) -> None:
    """New refunds and the gateway's answers for earlier ones hit the same aggregate at once."""
    _, payment = await paid_by_card(portal, tenant)
    first = (await refund(portal, tenant, payment["id"], 200)).json()
    second = (await refund(portal, tenant, payment["id"], 200)).json()
    results = await asyncio.gather(
        webhook(portal, new_id("evt"), first["pgw_reference"], 200, "refund.succeeded"),
        webhook(portal, new_id("evt"), first["pgw_reference"], 200, "refund.failed"),  # the gateway contradicts
        webhook(portal, new_id("evt"), second["pgw_reference"], 200, "refund.failed"),
        *(refund(portal, tenant, payment["id"], 300) for _ in range(4)),
    )
    outcomes = sorted(r.json().get("outcome", "") for r in results[:2])
    assert outcomes == sorted(["refund.succeeded", "ignored_refund_succeeded"]) or outcomes == sorted(
        ["refund.failed", "ignored_refund_failed"]
    ), outcomes
    created = [r for r in results[3:] if r.status_code == 201]
    # 1,200 paid, 400 reserved at first; each failure frees its 200 only if it lands before the refunds do.
    assert 2 <= len(created) <= 4, [r.status_code for r in results[3:]]
    await assert_money_invariants(portal_app, tenant.merchant_id)


async def test_a_void_racing_the_gateway_capture_has_exactly_one_outcome(
    portal: httpx.AsyncClient, portal_app: FastAPI, tenant: Tenant
) -> None:
    for _ in range(5):
        order = await ring_up(portal, tenant)
        b = await bill(portal, tenant, order["id"])
        payment = (await pay(portal, tenant, b["id"], b["total_amount"])).json()
        voided, captured = await asyncio.gather(
            portal.post(f"/payments/{payment['id']}/void", headers=tenant.as_device),
            webhook(portal, new_id("evt"), payment["pgw_reference"], payment["amount"]),
        )
        assert captured.status_code == 200, captured.text
        after = (await portal.get(f"/payments/{payment['id']}", headers=tenant.as_device)).json()
        final_bill = (await portal.get(f"/bills/{b['id']}", headers=tenant.as_device)).json()
        if voided.status_code == 200:  # the void won: the capture never pays, it is refunded and listed
            assert voided.json()["status"] == "canceled"
            assert captured.json()["outcome"] == "captured_after_void"
            assert after["status"] == "canceled" and after["captured_after_void_at"] is not None
            assert after["refund_pending_amount"] == payment["amount"]
            assert final_bill["paid_amount"] == 0 and final_bill["status"] == "unpaid"
            refunds = (await portal.get(f"/refunds?payment_id={payment['id']}", headers=tenant.as_device)).json()
            assert [(r["reason"], r["amount"]) for r in refunds["items"]] == [
                ("captured_after_void", payment["amount"])
            ]
        else:  # the capture won: the void is refused and the bill is paid
            assert voided.status_code == 409 and code(voided) == "payment_not_voidable"
            assert captured.json()["outcome"] == "payment.succeeded"
            assert after["status"] == "succeeded" and final_bill["status"] == "paid"
    await assert_money_invariants(portal_app, tenant.merchant_id)


async def test_a_voided_payment_frees_the_bill_and_the_gateway_can_be_late(
    portal: httpx.AsyncClient, portal_app: FastAPI, tenant: Tenant
) -> None:
    order = await ring_up(portal, tenant)
    b = await bill(portal, tenant, order["id"])
    payment = (await pay(portal, tenant, b["id"], b["total_amount"])).json()
    voided = await portal.post(f"/payments/{payment['id']}/void", headers=tenant.as_device)
    assert voided.status_code == 200 and voided.json()["status"] == "canceled"
    assert (await portal.post(f"/payments/{payment['id']}/void", headers=tenant.as_device)).status_code == 409
    # The whole bill can be paid again now.
    cash = await pay(portal, tenant, b["id"], b["total_amount"], "cash")
    assert cash.status_code == 201, cash.text
    late = await webhook(portal, new_id("evt"), payment["pgw_reference"], payment["amount"])
    assert late.status_code == 200 and late.json()["outcome"] == "captured_after_void"
    final_bill = (await portal.get(f"/bills/{b['id']}", headers=tenant.as_device)).json()
    assert final_bill["status"] == "paid" and final_bill["paid_amount"] == b["total_amount"]
    auto = (await portal.get(f"/refunds?payment_id={payment['id']}", headers=tenant.as_device)).json()["items"][0]
    settled = await webhook(portal, new_id("evt"), auto["pgw_reference"], auto["amount"], "refund.succeeded")
    assert settled.status_code == 200
    after = (await portal.get(f"/payments/{payment['id']}", headers=tenant.as_device)).json()
    assert after["refunded_amount"] == payment["amount"] and after["status"] == "canceled"
    # The refund of a capture that never counted leaves the bill and order untouched.
    assert (await portal.get(f"/bills/{b['id']}", headers=tenant.as_device)).json()["refunded_amount"] == 0
    listed = (await portal.get(f"/payments?bill_id={b['id']}&status=canceled", headers=tenant.as_merchant)).json()
    assert [p["id"] for p in listed["items"]] == [payment["id"]]
    await assert_money_invariants(portal_app, tenant.merchant_id)


async def test_refunds_and_voids_refuse_what_they_should(
    portal: httpx.AsyncClient, tenant: Tenant, make_tenant: MakeTenant
) -> None:
    order = await ring_up(portal, tenant)
    b = await bill(portal, tenant, order["id"])
    pending = (await pay(portal, tenant, b["id"], 100)).json()
    not_yet = await refund(portal, tenant, pending["id"], 50)
    assert not_yet.status_code == 409 and code(not_yet) == "payment_not_refundable"
    for amount in (0, -5):
        assert (await refund(portal, tenant, pending["id"], amount)).status_code == 422
    cash = (await pay(portal, tenant, b["id"], 200, "cash")).json()
    void_cash = await portal.post(f"/payments/{cash['id']}/void", headers=tenant.as_device)
    assert void_cash.status_code == 409 and code(void_cash) == "payment_not_voidable"
    ours = (await refund(portal, tenant, cash["id"], 50)).json()
    other = await make_tenant()
    for response in (
        await refund(portal, other, cash["id"], 10),
        await portal.post(f"/payments/{pending['id']}/void", headers=other.as_device),
        await portal.get(f"/refunds/{ours['id']}", headers=other.as_merchant),
        await portal.get(f"/refunds/{new_id('ref')}", headers=tenant.as_merchant),
    ):
        assert response.status_code == 404, response.text
    foreign_list = (await portal.get(f"/refunds?payment_id={cash['id']}", headers=other.as_merchant)).json()
    assert foreign_list["items"] == []
    keyed = {**tenant.as_device, "Idempotency-Key": "k-1"}
    bad_id = await portal.post("/refunds", json={"payment_id": "pay_x", "amount": 1}, headers=keyed)
    assert bad_id.status_code == 422
    # A refund without an Idempotency-Key could be paid twice by a retry: refused.
    keyless = await portal.post("/refunds", json={"payment_id": cash["id"], "amount": 10}, headers=tenant.as_device)
    assert keyless.status_code == 422 and "Idempotency-Key" in keyless.text


async def test_every_event_type_recorded_is_documented_in_asyncapi(
    portal: httpx.AsyncClient, portal_app: FastAPI, tenant: Tenant
) -> None:
    """Sales, split tender, refunds, voids and a late capture: every type they put on the outbox is in the
    AsyncAPI document's list of event types."""
    order = await ring_up(portal, tenant)
    b = await bill(portal, tenant, order["id"])
    card = (await pay(portal, tenant, b["id"], 500)).json()
    assert (await portal.post(f"/payments/{card['id']}/void", headers=tenant.as_device)).status_code == 200
    await webhook(portal, new_id("evt"), card["pgw_reference"], 500)  # captured after the void
    declined = (await pay(portal, tenant, b["id"], 500)).json()
    await webhook(portal, new_id("evt"), declined["pgw_reference"], 500, "payment.failed")
    cash = (await pay(portal, tenant, b["id"], 700, "cash")).json()
    card = (await pay(portal, tenant, b["id"], 500)).json()
    await webhook(portal, new_id("evt"), card["pgw_reference"], 500)
    assert (await refund(portal, tenant, cash["id"], 100)).status_code == 201
    pending = (await refund(portal, tenant, card["id"], 100)).json()
    await webhook(portal, new_id("evt"), pending["pgw_reference"], 100, "refund.failed")
    async with portal_app.state.engine.connect() as conn:
        recorded = set(
            (
                await conn.scalars(
                    text("SELECT DISTINCT type FROM outbox WHERE merchant_id = :m"), {"m": tenant.merchant_id}
                )
            ).all()
        )
    documented = set(yaml.safe_load(ASYNCAPI.read_text())["channels"]["orderEvents"]["parameters"]["type"]["enum"])
    assert {"refund.created", "refund.succeeded", "refund.failed", "payment.canceled"} <= recorded
    assert recorded <= documented, recorded - documented


async def test_a_capture_after_void_whose_automatic_refund_failed_can_be_refunded_again(
    portal: httpx.AsyncClient, portal_app: FastAPI, tenant: Tenant
) -> None:
    order = await ring_up(portal, tenant)
    b = await bill(portal, tenant, order["id"])
    payment = (await pay(portal, tenant, b["id"], b["total_amount"])).json()
    assert (await portal.post(f"/payments/{payment['id']}/void", headers=tenant.as_device)).status_code == 200
    await webhook(portal, new_id("evt"), payment["pgw_reference"], payment["amount"])  # captured anyway
    auto = (await portal.get(f"/refunds?payment_id={payment['id']}", headers=tenant.as_device)).json()["items"][0]
    failed = await webhook(portal, new_id("evt"), auto["pgw_reference"], auto["amount"], "refund.failed")
    assert failed.status_code == 200
    after = (await portal.get(f"/payments/{payment['id']}", headers=tenant.as_device)).json()
    assert after["refund_pending_amount"] == 0 and after["refunded_amount"] == 0
    again = await refund(portal, tenant, payment["id"], payment["amount"], reason="captured_after_void")
    assert again.status_code == 201 and again.json()["status"] == "pending", again.text
    settled = await webhook(portal, new_id("evt"), again.json()["pgw_reference"], payment["amount"], "refund.succeeded")
    assert settled.status_code == 200
    final_bill = (await portal.get(f"/bills/{b['id']}", headers=tenant.as_device)).json()
    assert final_bill["paid_amount"] == 0 and final_bill["refunded_amount"] == 0  # it never paid the bill
    async with portal_app.state.engine.connect() as conn:
        last = await conn.scalar(
            text(
                "SELECT payload->'data' FROM outbox WHERE subject = :p AND type LIKE 'payment.%'"
                " ORDER BY position DESC LIMIT 1"
            ),
            {"p": payment["id"]},
        )
        row = (
            await conn.execute(
                text("SELECT version, refunded_amount FROM payments WHERE id = :p"), {"p": payment["id"]}
            )
        ).one()
    # The payment's last event is the row as it ended up (version and refunded amount).
    assert (
        (last["version"], last["refunded_amount"])
        == (row.version, row.refunded_amount)
        == (row.version, payment["amount"])
    )
    await assert_money_invariants(portal_app, tenant.merchant_id)
