"""The mock gateway's test values (docs/sandbox.md), each through the whole portal: a terminal pays an amount
whose last two digits pick the gateway's behaviour, the mock gateway answers with signed webhooks over HTTP into
the same portal, and the test checks what the terminal and the merchant then see.

The portal runs in process with the real mock gateway (its webhooks reach the app through an ASGI transport
that records each delivery and the portal's answer); timings are shortened by the same settings operators use
(`SMARTPOS_PGW_MOCK_LATE_SECONDS`, `SMARTPOS_PGW_MOCK_TIMEOUT_SECONDS`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis
from fastapi import FastAPI

from portal.pgw.gateway import MockGateway
from portal.pgw.settlement import SettlementLedger
from tests.portal.helpers import bill, pay, ring_up
from tests.support.environment import redis_url
from tests.support.portal_fixtures import PORTAL, WEBHOOK_SECRET, Tenant

DELAY = 0.05
LATE = 1.5
TIMEOUT = 0.4


class Deliveries(httpx.AsyncBaseTransport):
    """The mock gateway's way into the portal: every webhook it posts, with the portal's answer."""

    def __init__(self, app: FastAPI) -> None:
        self.inner = httpx.ASGITransport(app=app)
        self.seen: list[tuple[float, dict[str, Any], int, dict[str, Any]]] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        # Recorded as it arrives: the portal may have applied it (a test polling the payment sees that) before
        # its answer is read back here.
        arrived, body = time.monotonic(), json.loads(await request.aread())
        answer: dict[str, Any] = {}
        self.seen.append((arrived, body, 0, answer))
        index = len(self.seen) - 1
        response = await self.inner.handle_async_request(request)
        await response.aread()
        answer.update(json.loads(response.content))
        self.seen[index] = (arrived, body, response.status_code, answer)
        return response

    async def answered(self, reference: str, timeout: float = 5.0) -> list[tuple[str, str, str]]:
        """`of(reference)` once the portal has answered every delivery about it."""
        deadline = time.monotonic() + timeout
        while any(status == 0 for _, body, status, _ in self.seen if body["data"]["pgw_reference"] == reference):
            if time.monotonic() > deadline:
                break
            await asyncio.sleep(0.01)
        return self.of(reference)

    def of(self, reference: str) -> list[tuple[str, str, str]]:
        """(event id, type, the portal's outcome) of each delivery about `reference`, in arrival order."""
        return [
            (body["id"], body["type"], answer.get("outcome", answer.get("code", "")))
            for _, body, _, answer in self.seen
            if body["data"]["pgw_reference"] == reference
        ]


@dataclasses.dataclass
class Sandbox:
    gateway: MockGateway
    deliveries: Deliveries


@pytest.fixture
async def sandbox(portal_app: FastAPI) -> AsyncIterator[Sandbox]:
    redis = aioredis.Redis.from_url(redis_url())
    deliveries = Deliveries(portal_app)
    gateway = MockGateway(
        f"{PORTAL}/webhooks/pgw",
        WEBHOOK_SECRET,
        DELAY,
        SettlementLedger(redis),
        late_delay=LATE,
        timeout=TIMEOUT,
        http=httpx.AsyncClient(transport=deliveries, base_url=PORTAL),
    )
    services = portal_app.state.services
    portal_app.state.services = dataclasses.replace(services, gateway=gateway)
    try:
        yield Sandbox(gateway, deliveries)
    finally:
        portal_app.state.services = services
        await gateway.close()
        await redis.aclose()  # type: ignore[attr-defined]  # redis 5 (types-redis describes 4)


async def until(check: Callable[[], Any], timeout: float = 5.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = await check()
        if value or time.monotonic() > deadline:
            return value
        await asyncio.sleep(0.02)


async def card_payment(portal: httpx.AsyncClient, tenant: Tenant, amount: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """A bill of 1,200 (two items) and a card payment of `amount` towards it: (bill, payment)."""
    order = await ring_up(portal, tenant)
    billed = await bill(portal, tenant, order["id"])
    paid = await pay(portal, tenant, billed["id"], amount)
    assert paid.status_code == 201, paid.text
    assert paid.json()["status"] == "pending"
    return billed, paid.json()


async def payment_of(portal: httpx.AsyncClient, tenant: Tenant, payment_id: str) -> dict[str, Any]:
    return (await portal.get(f"/payments/{payment_id}", headers=tenant.as_device)).json()  # type: ignore[no-any-return]


async def settled_status(portal: httpx.AsyncClient, tenant: Tenant, payment_id: str, *statuses: str) -> dict[str, Any]:
    async def check() -> dict[str, Any] | None:
        payment = await payment_of(portal, tenant, payment_id)
        return payment if payment["status"] in statuses else None

    payment = await until(check)
    assert payment is not None, f"payment {payment_id} never reached {statuses}"
    return payment  # type: ignore[no-any-return]


async def test_any_other_amount_is_confirmed_once(portal: httpx.AsyncClient, tenant: Tenant, sandbox: Sandbox) -> None:
    billed, payment = await card_payment(portal, tenant, 1_200)
    assert (await settled_status(portal, tenant, payment["id"], "succeeded"))["failure_reason"] is None
    assert [(kind, outcome) for _, kind, outcome in await sandbox.deliveries.answered(payment["pgw_reference"])] == [
        ("payment.succeeded", "payment.succeeded")
    ]
    assert (await portal.get(f"/bills/{billed['id']}", headers=tenant.as_device)).json()["status"] == "paid"


async def test_a_refund_ending_in_71_never_reaches_the_gateway_and_stays_pending(
    portal: httpx.AsyncClient, tenant: Tenant, sandbox: Sandbox
) -> None:
    _, payment = await card_payment(portal, tenant, 1_200)
    await settled_status(portal, tenant, payment["id"], "succeeded")
    lost = await portal.post(
        "/refunds",
        json={"payment_id": payment["id"], "amount": 171},
        headers={**tenant.as_device, "Idempotency-Key": "lost-refund"},
    )
    assert lost.status_code == 201 and lost.json()["status"] == "pending", lost.text
    kept = await portal.post(
        "/refunds",
        json={"payment_id": payment["id"], "amount": 100},
        headers={**tenant.as_device, "Idempotency-Key": "kept-refund"},
    )
    assert kept.status_code == 201, kept.text

    async def settled() -> dict[str, Any] | None:
        current = await payment_of(portal, tenant, payment["id"])
        return current if current["refunded_amount"] == 100 else None

    await until(settled)  # the other refund settled: the gateway answers, just never about this one
    await asyncio.sleep(DELAY * 4)
    assert (await portal.get(f"/refunds/{lost.json()['id']}", headers=tenant.as_device)).json()["status"] == "pending"
    assert not sandbox.deliveries.of(lost.json()["pgw_reference"])


@pytest.mark.parametrize(
    ("amount", "reason"), [(1_151, "insufficient_funds"), (1_152, "expired_card"), (1_153, "do_not_honor")]
)
async def test_declines_fail_the_payment_with_the_gateways_reason(
    portal: httpx.AsyncClient, tenant: Tenant, sandbox: Sandbox, amount: int, reason: str
) -> None:
    billed, payment = await card_payment(portal, tenant, amount)
    failed = await settled_status(portal, tenant, payment["id"], "failed", "succeeded")
    assert (failed["status"], failed["failure_reason"]) == ("failed", reason)
    again = await portal.get(f"/bills/{billed['id']}", headers=tenant.as_device)
    assert (again.json()["status"], again.json()["paid_amount"]) == ("unpaid", 0)
    # What the decline reserved is payable again: the customer pays by cash.
    assert (await pay(portal, tenant, billed["id"], 1_200, "cash")).json()["status"] == "succeeded"


async def test_a_late_webhook_leaves_the_payment_pending_until_it_comes(
    portal: httpx.AsyncClient, tenant: Tenant, sandbox: Sandbox
) -> None:
    started = time.monotonic()
    _, payment = await card_payment(portal, tenant, 1_161)
    await asyncio.sleep(LATE * 0.6)
    assert (await payment_of(portal, tenant, payment["id"]))["status"] == "pending"
    await settled_status(portal, tenant, payment["id"], "succeeded")
    arrived = [
        at for at, body, _, _ in sandbox.deliveries.seen if body["data"]["pgw_reference"] == payment["pgw_reference"]
    ]
    assert len(arrived) == 1 and arrived[0] - started >= LATE


async def test_a_webhook_sent_three_times_pays_once(
    portal: httpx.AsyncClient, tenant: Tenant, sandbox: Sandbox
) -> None:
    billed, payment = await card_payment(portal, tenant, 1_162)

    async def three() -> bool:
        return len(sandbox.deliveries.of(payment["pgw_reference"])) == 3

    assert await until(three)
    seen = await sandbox.deliveries.answered(payment["pgw_reference"])
    assert len({event_id for event_id, _, _ in seen}) == 1  # one event, delivered three times
    assert [outcome for _, _, outcome in seen] == ["payment.succeeded", "duplicate", "duplicate"]
    again = (await portal.get(f"/bills/{billed['id']}", headers=tenant.as_device)).json()
    assert (again["status"], again["paid_amount"]) == ("partially_paid", 1_162)


async def test_failed_then_succeeded_keeps_the_failure_and_refunds_the_capture(
    portal: httpx.AsyncClient, tenant: Tenant, sandbox: Sandbox
) -> None:
    billed, payment = await card_payment(portal, tenant, 1_163)

    async def refunded() -> dict[str, Any] | None:
        current = await payment_of(portal, tenant, payment["id"])
        return current if current["refunded_amount"] == 1_163 else None

    settled = await until(refunded)
    assert settled is not None, sandbox.deliveries.of(payment["pgw_reference"])
    assert (settled["status"], settled["failure_reason"]) == ("failed", "do_not_honor")
    assert settled["captured_after_void_at"] is not None  # listed for review
    outcomes = [(kind, outcome) for _, kind, outcome in await sandbox.deliveries.answered(payment["pgw_reference"])]
    assert outcomes == [("payment.failed", "payment.failed"), ("payment.succeeded", "captured_after_failure")]
    refunds = (await portal.get("/refunds", params={"payment_id": payment["id"]}, headers=tenant.as_merchant)).json()
    assert [(r["amount"], r["status"]) for r in refunds["items"]] == [(1_163, "succeeded")]
    again = (await portal.get(f"/bills/{billed['id']}", headers=tenant.as_device)).json()
    assert again["paid_amount"] == 0  # the capture never paid the bill


async def test_a_gateway_timeout_on_create_leaves_the_payment_pending_and_voidable(
    portal: httpx.AsyncClient, tenant: Tenant, sandbox: Sandbox
) -> None:
    started = time.monotonic()
    billed, payment = await card_payment(portal, tenant, 1_171)  # answered once the charge call gave up
    assert time.monotonic() - started >= TIMEOUT
    await asyncio.sleep(DELAY * 4)
    assert sandbox.deliveries.of(payment["pgw_reference"]) == []  # the gateway never answered
    assert (await payment_of(portal, tenant, payment["id"]))["status"] == "pending"  # it may have taken the money
    voided = await portal.post(f"/payments/{payment['id']}/void", headers=tenant.as_device)
    assert voided.status_code == 200 and voided.json()["status"] == "canceled"
    assert (await pay(portal, tenant, billed["id"], 1_200, "cash")).json()["status"] == "succeeded"


async def test_a_settlement_mismatch_settles_one_unit_short(
    portal: httpx.AsyncClient, tenant: Tenant, sandbox: Sandbox
) -> None:
    before = datetime.now(UTC) - timedelta(seconds=1)
    _, payment = await card_payment(portal, tenant, 1_193)
    assert (await settled_status(portal, tenant, payment["id"], "succeeded"))["amount"] == 1_193
    report = await sandbox.gateway.settlement_report(tenant.store_id, before, datetime.now(UTC) + timedelta(seconds=1))
    assert [(e.pgw_reference, e.amount) for e in report] == [(payment["pgw_reference"], 1_192)]
