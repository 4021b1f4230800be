"""Every query the portal sends for a tenant is bound to a merchant.

Records each statement the portal sends (asyncpg and SQLAlchemy) while merchants, devices, an admin and the
gateway exercise every checkout, catalog and store endpoint, and checks each statement that reads or changes a
tenant-owned table: it must name `merchant_id` (a column written, or a condition), unless it is a tenant
resolution (marked, returning only the owner) that the work then continues scoped to.
"""

from __future__ import annotations

import dataclasses
import re
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import event

from device_auth.clients.service import create_operator_admin
from tests.portal.helpers import bill, pay, ring_up, webhook
from tests.support.auth_fixtures import basic
from tests.support.portal_fixtures import MakeTenant, bearer

TENANT_TABLES = (
    "orders",
    "order_lines",
    "bills",
    "payments",
    "refunds",
    "products",
    "stores",
    "shifts",
    "cash_movements",
    "z_reports",
    "reconciliations",
    "credit_accounts",
    "credit_entries",
    "credit_programmes",
    "credit_enrolments",
    "merchant_configs",
    "change_requests",
    "change_request_approvals",
)
_TOUCHES = re.compile(rf"\b(?:from|join|update|into)\s+(?:{'|'.join(TENANT_TABLES)})\b", re.I)
_RESOLUTION = "/* tenant-resolution */"


_CONDITION = re.compile(r"merchant_id\s*(?:=|\bIN\b)", re.I)
_INSERT = re.compile(rf"\bINSERT\s+INTO\s+(?:{'|'.join(TENANT_TABLES)})\s*\([^)]*\bmerchant_id\b", re.I)
# The checkout's save statement is several data-modifying CTEs (`w0 AS (...)`): each is checked on its own.
_PARTS = re.compile(r"(?=\bw\d+ AS \()|\n(?=SELECT\s)")


def unscoped(sql: str) -> bool:
    """True for a statement with a part that touches a tenant table without a merchant condition (or, for an
    insert, without writing the merchant)."""
    if _RESOLUTION in sql:
        return False
    return any(
        _TOUCHES.search(part) and not (_CONDITION.search(part) or _INSERT.search(part)) for part in _PARTS.split(sql)
    )


class Recorder:
    def __init__(self) -> None:
        self.statements: list[str] = []

    def record(self, sql: str) -> None:
        self.statements.append(sql)


@pytest.fixture
async def recorded(portal_app: FastAPI) -> AsyncIterator[Recorder]:
    recorder = Recorder()
    services = portal_app.state.services
    portal_app.state.services = dataclasses.replace(services, statements=recorder)

    def on_execute(conn: object, cursor: object, statement: str, *args: object) -> None:
        recorder.record(statement)

    engine = portal_app.state.engine.sync_engine
    event.listen(engine, "before_cursor_execute", on_execute)
    try:
        yield recorder
    finally:
        event.remove(engine, "before_cursor_execute", on_execute)
        portal_app.state.services = services


def test_the_check_flags_an_unscoped_query() -> None:
    assert unscoped("SELECT id FROM orders WHERE id = $1")
    assert unscoped("UPDATE bills SET status = $1 WHERE id = $2")
    assert not unscoped("SELECT id FROM orders WHERE id = $1 AND merchant_id = $2")
    assert not unscoped(f"SELECT merchant_id FROM orders WHERE id = $1 {_RESOLUTION}")
    assert not unscoped("SELECT 1 FROM processed_webhooks WHERE event_id = $1")
    assert unscoped("SELECT p.id, p.merchant_id FROM payments p WHERE p.id = $1")  # selected is not scoped
    assert not unscoped("INSERT INTO orders (id, merchant_id) VALUES ($1, $2)")
    assert unscoped(
        "WITH w0 AS (INSERT INTO orders (id, merchant_id) VALUES ($2, $1)),\nw1 AS (UPDATE bills SET x = 1 WHERE id = $3)\nSELECT 1"
    )


async def reviewer(auth: httpx.AsyncClient, auth_app: FastAPI) -> dict[str, str]:
    """Another operator's admin token (admins are made against device-auth's database, never by an admin token)."""
    async with auth_app.state.sessionmaker() as session, session.begin():
        client_id, secret = await create_operator_admin(session, "reviewer")
    token = await auth.post("/oauth/token", data={"grant_type": "client_credentials"}, headers=basic(client_id, secret))
    return bearer(token.json()["access_token"])


async def test_every_portal_query_for_a_tenant_names_its_merchant(
    portal: httpx.AsyncClient,
    auth: httpx.AsyncClient,
    auth_app: FastAPI,
    make_tenant: MakeTenant,
    admin_token: str,
    recorded: Recorder,
) -> None:
    a, b = await make_tenant(), await make_tenant()
    admin = bearer(admin_token)
    reviewers = [await reviewer(auth, auth_app), await reviewer(auth, auth_app)]
    recorded.statements.clear()  # tenants made; from here on, every request of a working day
    order = await ring_up(portal, a)
    card = await bill(portal, a, order["id"])
    pending = (await pay(portal, a, card["id"], 200)).json()
    await webhook(portal, f"evt_{uuid.uuid4().hex}", pending["pgw_reference"], 200)
    await pay(portal, a, card["id"], order["total_amount"] - 200, "cash")
    other = await ring_up(portal, a)
    await portal.patch(f"/orders/{other['id']}", json={"status": "canceled"}, headers=a.as_merchant)
    third = await ring_up(portal, a)
    await portal.patch(f"/orders/{third['id']}", json={"status": "completed"}, headers=admin)
    shift = (await portal.post("/shifts", json={"opening_float": 100}, headers=a.as_device)).json()
    await portal.post(f"/shifts/{shift['id']}/cash-movements", json={"kind": "paid_in", "amount": 5}, headers=admin)
    await portal.post(f"/shifts/{shift['id']}/close", json={"counted_cash": 100}, headers=a.as_merchant)
    await portal.patch(f"/stores/{a.store_id}", json={"timezone": "Asia/Tokyo"}, headers=a.as_merchant)
    await portal.post(f"/stores/{a.store_id}/closeouts", json={}, headers=admin)  # not over yet: 409, after reads
    account = (await portal.post("/credit-accounts", json={"customer_ref": "c-1"}, headers=a.as_merchant)).json()
    await portal.post(
        f"/credit-accounts/{account['id']}/entries",
        json={"kind": "load", "amount": 5_000},
        headers={**a.as_merchant, "Idempotency-Key": uuid.uuid4().hex},
    )
    on_credit = await bill(portal, a, (await ring_up(portal, a))["id"])
    redeemed = await portal.post(
        "/payments",
        json={
            "bill_id": on_credit["id"],
            "amount": on_credit["total_amount"],
            "method": "credit",
            "credit_account_id": account["id"],
        },
        headers=a.as_device,
    )
    await portal.post(
        "/refunds",
        json={"payment_id": redeemed.json()["id"], "amount": 100},
        headers={**a.as_device, "Idempotency-Key": uuid.uuid4().hex},
    )
    programme = await portal.post(
        "/credit-programmes",
        json={"store_id": a.store_id, "name": "staff", "allocation_amount": 1_000, "period": "monthly"},
        headers=a.as_merchant,
    )
    for _ in range(2):  # the second enrolment finds the first
        await portal.post(
            f"/credit-programmes/{programme.json()['id']}/enrolments",
            json={"account_id": account["id"]},
            headers=admin,
        )
    reads = [
        f"/shifts/{shift['id']}",
        "/shifts",
        f"/stores/{a.store_id}/closeouts?verify=true",
        f"/stores/{a.store_id}/reconciliations/2026-01-05",
        f"/credit-accounts/{account['id']}",
        f"/credit-accounts/{account['id']}/entries",
        f"/orders/{order['id']}",
        f"/bills/{card['id']}",
        f"/payments/{pending['id']}",
        f"/products/{a.products[0]['id']}",
        f"/stores/{a.store_id}",
        f"/merchants/{a.merchant_id}",
        "/orders",
        "/products",
        "/stores",
    ]
    for path in reads:
        for headers in (a.as_merchant, a.as_device, b.as_merchant):
            await portal.get(path, headers=headers)
        await portal.get(path, headers=admin, params={"merchant_id": a.merchant_id} if "/" not in path[1:] else None)
    await portal.post("/products", json={"name": "tea", "unit_price": 300}, headers=a.as_merchant)
    await portal.post("/stores", json={"name": "annex"}, headers=a.as_merchant)
    # Configuration: read, proposed, approved twice (applied at once), read back, reverted.
    document = (await portal.get("/config", headers=a.as_merchant)).json()["document"]
    change = await portal.post(
        "/change-requests",
        json={"merchant_id": a.merchant_id, "bundle": {"document": {**document, "receipt_text": "thanks"}}},
        headers=admin,
    )
    for headers in reviewers:
        await portal.post(f"/change-requests/{change.json()['id']}/approvals", headers=headers)
    await portal.get(f"/change-requests/{change.json()['id']}", headers=admin)
    await portal.get("/config", headers=admin, params={"merchant_id": a.merchant_id})
    reverted = await portal.post(f"/change-requests/{change.json()['id']}/revert", headers=admin)
    assert reverted.status_code == 200 and reverted.json()["status"] == "reverted", reverted.text
    assert redeemed.status_code == 201, redeemed.text
    assert programme.status_code == 201, programme.text
    assert len(recorded.statements) > 40, "the flow ran"
    offenders = [sql for sql in recorded.statements if unscoped(sql)]
    assert offenders == []
