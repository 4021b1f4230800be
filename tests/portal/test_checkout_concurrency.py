"""The checkout's optimistic save: a save whose aggregate changed since it was read writes nothing at all, and the
use case then redoes the transition under the order's row lock."""

from __future__ import annotations

import asyncio

import httpx
from fastapi import FastAPI
from sqlalchemy import text

from portal.checkout.model import Checkout
from portal.checkout.repository import CheckoutRepository
from portal.checkout.states import PaymentMethod
from portal.tenancy import Tenant
from smartpos_shared.ids import new_id
from smartpos_shared.pg import Db
from tests.portal.helpers import bill, pay, ring_up
from tests.support.portal_fixtures import Tenant as TenantFixture


class Count:
    def record(self, sql: str) -> None:
        pass


async def _counts(app: FastAPI, order_id: str) -> tuple[int, int]:
    async with app.state.engine.connect() as conn:
        payments = await conn.scalar(text("SELECT count(*) FROM payments WHERE order_id = :o"), {"o": order_id})
        events = await conn.scalar(
            text("SELECT count(*) FROM outbox WHERE payload->'data'->>'order_id' = :o"), {"o": order_id}
        )
    return int(payments), int(events)


async def test_a_stale_save_writes_nothing(
    portal: httpx.AsyncClient, portal_app: FastAPI, tenant: TenantFixture
) -> None:
    order = await ring_up(portal, tenant)
    b = await bill(portal, tenant, order["id"])
    db = Db(portal_app.state.services.pool, Count())
    try:
        repo = CheckoutRepository(db, Tenant(tenant.merchant_id))
        stale = await repo.load_by_bill(b["id"])
        assert isinstance(stale, Checkout) and stale.lock_version is not None
        # Meanwhile another request changes the aggregate.
        assert (await pay(portal, tenant, b["id"], 100, "cash")).status_code == 201
        before = await _counts(portal_app, order["id"])
        now = stale.order.created_at
        stale.take_payment(new_id("pay"), 200, PaymentMethod.cash, None, now)
        assert await repo.save(stale, now) is False
        assert await _counts(portal_app, order["id"]) == before  # no payment, no bill change, no event
        fresh = await repo.load_by_bill(b["id"])
        assert fresh is not None and fresh.bill is not None and fresh.bill.paid_amount == 100
        assert fresh.lock_version == stale.lock_version + 1
    finally:
        await db.release()


async def test_racing_payments_fall_back_to_the_lock_and_exactly_fill_the_bill(
    portal: httpx.AsyncClient, tenant: TenantFixture
) -> None:
    """20 cash payments of a fifth of the bill at once: the optimistic saves collide, the losers redo their
    transition under the lock, and exactly five succeed; the rest find the bill paid (409)."""
    order = await ring_up(portal, tenant)
    b = await bill(portal, tenant, order["id"])
    share = b["total_amount"] // 5
    assert share * 5 == b["total_amount"]
    responses = await asyncio.gather(*(pay(portal, tenant, b["id"], share, "cash") for _ in range(20)))
    statuses = sorted(r.status_code for r in responses)
    assert statuses.count(201) == 5 and statuses.count(409) == 15, statuses
    final = (await portal.get(f"/bills/{b['id']}", headers=tenant.as_device)).json()
    assert final["status"] == "paid" and final["paid_amount"] == b["total_amount"]
    order_after = (await portal.get(f"/orders/{order['id']}", headers=tenant.as_device)).json()
    assert order_after["status"] == "completed" and order_after["version"] == 2
