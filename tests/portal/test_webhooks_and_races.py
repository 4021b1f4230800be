"""Gateway webhooks (signature, replay, amount mismatch, order) and concurrent requests on one bill."""

from __future__ import annotations

import asyncio
import json
import time
import uuid

import httpx
from fastapi import FastAPI
from sqlalchemy import text

from portal.pgw.signature import sign
from tests.portal.helpers import bill, pay, ring_up, webhook
from tests.support.portal_fixtures import WEBHOOK_SECRET, Tenant, signed_webhook


async def _pending_card(portal: httpx.AsyncClient, tenant: Tenant, amount: int = 1200) -> tuple[dict, dict, dict]:  # type: ignore[type-arg]
    order = await ring_up(portal, tenant)
    b = await bill(portal, tenant, order["id"])
    payment = (await pay(portal, tenant, b["id"], amount)).json()
    return order, b, payment


async def _state(portal: httpx.AsyncClient, tenant: Tenant, payment: dict) -> tuple[str, str, int]:  # type: ignore[type-arg]
    p = (await portal.get(f"/payments/{payment['id']}", headers=tenant.as_device)).json()
    b = (await portal.get(f"/bills/{payment['bill_id']}", headers=tenant.as_device)).json()
    return p["status"], b["status"], b["paid_amount"]


def _event(reference: str, amount: int, kind: str = "payment.succeeded") -> dict:  # type: ignore[type-arg]
    return {"id": f"evt_{uuid.uuid4().hex}", "type": kind, "data": {"pgw_reference": reference, "amount": amount}}


async def test_bad_missing_or_stale_signatures_are_400_and_change_nothing(
    portal: httpx.AsyncClient, tenant: Tenant
) -> None:
    _, _, payment = await _pending_card(portal, tenant)
    event = _event(payment["pgw_reference"], 1200)
    body = json.dumps(event).encode()
    now = int(time.time())
    attempts = {
        "missing": {},
        "wrong secret": {"PGW-Signature": sign("whsec_wrong", now, body)},
        "stale": {"PGW-Signature": sign(WEBHOOK_SECRET, now - 301, body)},
        "future": {"PGW-Signature": sign(WEBHOOK_SECRET, now + 301, body)},
        "garbage": {"PGW-Signature": "t=abc,v1=zz"},
        "no v1": {"PGW-Signature": f"t={now}"},
    }
    for name, headers in attempts.items():
        response = await portal.post(
            "/webhooks/pgw", content=body, headers={"content-type": "application/json", **headers}
        )
        assert response.status_code == 400, name
        assert response.headers["content-type"] == "application/problem+json"
    # The body is signed byte for byte: a tampered amount fails too.
    tampered = body.replace(b"1200", b"9999")
    headers = {"content-type": "application/json", "PGW-Signature": sign(WEBHOOK_SECRET, now, body)}
    assert (await portal.post("/webhooks/pgw", content=tampered, headers=headers)).status_code == 400
    assert await _state(portal, tenant, payment) == ("pending", "unpaid", 0)


async def test_signature_within_tolerance_and_rotated_secrets_are_accepted(
    portal: httpx.AsyncClient, tenant: Tenant
) -> None:
    _, _, payment = await _pending_card(portal, tenant)
    body = json.dumps(_event(payment["pgw_reference"], 1200)).encode()
    t = int(time.time()) - 290
    header = sign("whsec_old", t, body) + "," + sign(WEBHOOK_SECRET, t, body).split(",")[1]
    response = await portal.post(
        "/webhooks/pgw", content=body, headers={"content-type": "application/json", "PGW-Signature": header}
    )
    assert response.status_code == 200
    assert await _state(portal, tenant, payment) == ("succeeded", "paid", 1200)


async def test_a_repeated_event_is_acknowledged_and_changes_nothing(
    portal: httpx.AsyncClient, portal_app: FastAPI, tenant: Tenant
) -> None:
    _, _, payment = await _pending_card(portal, tenant, 600)
    event = _event(payment["pgw_reference"], 600)
    first = await portal.post("/webhooks/pgw", **signed_webhook(event))
    second = await portal.post("/webhooks/pgw", **signed_webhook(event))
    assert first.status_code == second.status_code == 200
    assert second.json()["outcome"].startswith("duplicate")
    assert await _state(portal, tenant, payment) == ("succeeded", "partially_paid", 600)
    async with portal_app.state.engine.connect() as conn:
        count = await conn.scalar(
            text("SELECT count(*) FROM outbox WHERE subject = :p AND type = 'payment.succeeded'"), {"p": payment["id"]}
        )
    assert count == 1


async def test_amount_mismatch_is_recorded_never_paid_and_answered_clearly(
    portal: httpx.AsyncClient, portal_app: FastAPI, tenant: Tenant
) -> None:
    _, _, payment = await _pending_card(portal, tenant)
    event = _event(payment["pgw_reference"], 1)
    response = await portal.post("/webhooks/pgw", **signed_webhook(event))
    assert response.status_code == 422
    assert response.json()["type"].endswith("amount_mismatch")
    assert (response.json()["expected_amount"], response.json()["received_amount"]) == (1200, 1)
    assert await _state(portal, tenant, payment) == ("pending", "unpaid", 0)
    async with portal_app.state.engine.connect() as conn:
        outcome = await conn.scalar(
            text("SELECT outcome FROM processed_webhooks WHERE event_id = :e"), {"e": event["id"]}
        )
    assert outcome == "amount_mismatch"
    # The same event again: an event id seen before is 200 (API.md), still recorded once, still not paid.
    assert (await portal.post("/webhooks/pgw", **signed_webhook(event))).status_code == 200
    assert await _state(portal, tenant, payment) == ("pending", "unpaid", 0)
    # Recorded as an event too, once (pilots are watched for mismatches), with what differed.
    async with portal_app.state.engine.connect() as conn:
        rows = (
            await conn.execute(
                text("SELECT merchant_id, store_id, subject, payload FROM outbox WHERE type = 'payment.webhook_mismatch'"
                     " AND payload->'data'->>'gateway_event_id' = :e"),
                {"e": event["id"]},
            )
        ).all()  # fmt: skip
    assert [(r.merchant_id, r.store_id, r.subject) for r in rows] == [
        (tenant.merchant_id, tenant.store_id, payment["id"])
    ]
    data = rows[0].payload["data"]
    assert (data["expected_amount"], data["received_amount"], data["payment_id"]) == (1200, 1, payment["id"])


async def test_out_of_order_events_are_harmless(portal: httpx.AsyncClient, tenant: Tenant) -> None:
    _, _, payment = await _pending_card(portal, tenant)
    assert (await webhook(portal, f"evt_{uuid.uuid4().hex}", payment["pgw_reference"], 1200)).status_code == 200
    late_failure = await webhook(portal, f"evt_{uuid.uuid4().hex}", payment["pgw_reference"], 1200, "payment.failed")
    assert late_failure.status_code == 200 and late_failure.json()["outcome"] == "ignored_payment_succeeded"
    assert await _state(portal, tenant, payment) == ("succeeded", "paid", 1200)


async def test_unknown_references_and_malformed_events(portal: httpx.AsyncClient) -> None:
    assert (await webhook(portal, "evt_x", "pgwref_unknown", 100)).status_code == 404
    for body in (
        b"not json",
        b"[]",
        b'{"id": "e", "type": "payment.refunded", "data": {"pgw_reference": "r", "amount": 1}}',
        b'{"id": "e", "type": "payment.succeeded", "data": {"pgw_reference": "r", "amount": "100"}}',
    ):
        headers = {"content-type": "application/json", "PGW-Signature": sign(WEBHOOK_SECRET, int(time.time()), body)}
        response = await portal.post("/webhooks/pgw", content=body, headers=headers)
        assert response.status_code == 400, body


async def test_50_concurrent_duplicate_webhooks_have_exactly_one_effect(
    portal: httpx.AsyncClient, portal_app: FastAPI, tenant: Tenant
) -> None:
    order, b, payment = await _pending_card(portal, tenant)
    event = _event(payment["pgw_reference"], 1200)
    responses = await asyncio.gather(*(portal.post("/webhooks/pgw", **signed_webhook(event)) for _ in range(50)))
    assert all(r.status_code == 200 for r in responses), {r.status_code for r in responses}
    outcomes = [r.json()["outcome"] for r in responses]
    assert outcomes.count("payment.succeeded") == 1
    assert await _state(portal, tenant, payment) == ("succeeded", "paid", 1200)
    async with portal_app.state.engine.connect() as conn:
        events = (
            await conn.execute(
                text("SELECT type, count(*) AS n FROM outbox WHERE subject IN (:o, :b, :p) GROUP BY type"),
                {"o": order["id"], "b": b["id"], "p": payment["id"]},
            )
        ).all()
    assert {row.type: row.n for row in events} == {
        "order.created": 1, "order.updated": 1, "bill.created": 1, "bill.paid": 1,
        "payment.created": 1, "payment.succeeded": 1,
    }  # fmt: skip


async def test_20_concurrent_payments_for_one_bill_never_overpay(portal: httpx.AsyncClient, tenant: Tenant) -> None:
    order = await ring_up(portal, tenant)
    b = await bill(portal, tenant, order["id"])
    responses = await asyncio.gather(*(pay(portal, tenant, b["id"], 1200, "cash") for _ in range(20)))
    statuses = sorted(r.status_code for r in responses)
    assert statuses.count(201) == 1, statuses
    assert set(statuses) <= {201, 409, 422}
    final = (await portal.get(f"/bills/{b['id']}", headers=tenant.as_device)).json()
    assert (final["status"], final["paid_amount"]) == ("paid", 1200)


async def test_20_concurrent_partial_payments_stop_at_the_total(portal: httpx.AsyncClient, tenant: Tenant) -> None:
    order = await ring_up(portal, tenant)  # 1200
    b = await bill(portal, tenant, order["id"])
    responses = await asyncio.gather(*(pay(portal, tenant, b["id"], 100, method) for method in ["cash", "card"] * 10))
    created = [r.json() for r in responses if r.status_code == 201]
    assert len(created) == 12 and sum(p["amount"] for p in created) == 1200
    for p in created:
        if p["status"] == "pending":
            assert (await webhook(portal, f"evt_{uuid.uuid4().hex}", p["pgw_reference"], 100)).status_code == 200
    final = (await portal.get(f"/bills/{b['id']}", headers=tenant.as_device)).json()
    assert (final["status"], final["paid_amount"]) == ("paid", 1200)
