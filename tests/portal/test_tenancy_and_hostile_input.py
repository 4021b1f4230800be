"""Every tenant isolated (other tenants' resources are 404, lists exclude them) and every malformed or hostile
input answered with a 4xx problem that changes nothing."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text

from smartpos_shared.ids import new_id
from tests.portal.helpers import bill, pay, ring_up
from tests.support.portal_fixtures import MakeTenant, Tenant, bearer


async def test_device_token_creates_an_order_then_expires(
    portal: httpx.AsyncClient, portal_app: FastAPI, auth: httpx.AsyncClient, tenant: Tenant
) -> None:
    """The seed's device test: a 120 s token works, and after expiry the same token is 401 (injected clock)."""
    device = tenant.extra["device"]
    token_response = (await auth.post("/oauth/token", data=device.form())).json()
    assert token_response["expires_in"] == 120
    headers = bearer(token_response["access_token"])
    items = [{"product_id": tenant.products[0]["id"], "quantity": 1}]
    created = await portal.post("/orders", json={"items": items}, headers=headers)
    assert created.status_code == 201 and created.json()["store_id"] == tenant.store_id
    portal_app.state.clock.offset = 126  # past 120 s and the 5 s leeway
    expired = await portal.post("/orders", json={"items": items}, headers=headers)
    assert expired.status_code == 401
    assert expired.headers["www-authenticate"].startswith("Bearer")
    assert (await portal.get(f"/orders/{created.json()['id']}", headers=headers)).status_code == 401


async def test_a_revoked_devices_live_token_is_refused_within_a_second(
    portal: httpx.AsyncClient, auth: httpx.AsyncClient, admin_token: str, tenant: Tenant
) -> None:
    assert (await portal.get("/orders", headers=tenant.as_device)).status_code == 200
    revoked = await auth.post(f"/devices/{tenant.device_id}/revoke", headers=bearer(admin_token))
    assert revoked.status_code == 200
    started = time.monotonic()
    while (await portal.get("/orders", headers=tenant.as_device)).status_code != 401:
        assert time.monotonic() - started < 1.0, "the revoked device's token still works after a second"
        await asyncio.sleep(0.02)
    # The merchant's own token is unaffected.
    assert (await portal.get("/orders", headers=tenant.as_merchant)).status_code == 200


async def test_other_tenants_resources_are_404_everywhere(portal: httpx.AsyncClient, make_tenant: MakeTenant) -> None:
    a, b = await make_tenant(), await make_tenant()
    order = await ring_up(portal, a)
    b_bill = await bill(portal, a, order["id"])
    payment = (await pay(portal, a, b_bill["id"], 100, "cash")).json()
    resources = [
        f"/orders/{order['id']}",
        f"/bills/{b_bill['id']}",
        f"/payments/{payment['id']}",
        f"/products/{a.products[0]['id']}",
        f"/stores/{a.store_id}",
        f"/merchants/{a.merchant_id}",
    ]
    for intruder in (b.as_merchant, b.as_device):
        for path in resources:
            response = await portal.get(path, headers=intruder)
            assert response.status_code == 404, (path, response.text)
        assert (
            await portal.patch(f"/orders/{order['id']}", json={"status": "canceled"}, headers=intruder)
        ).status_code == 404
        assert (await portal.post("/bills", json={"order_id": order["id"]}, headers=intruder)).status_code == 404
        assert (
            await portal.post(
                "/payments", json={"bill_id": b_bill["id"], "amount": 1, "method": "cash"}, headers=intruder
            )
        ).status_code == 404
        foreign_product = [{"product_id": a.products[0]["id"], "quantity": 1}]
        response = await portal.post(
            "/orders", json={"store_id": b.store_id, "items": foreign_product}, headers=intruder
        )
        assert response.status_code == 422  # a product of another merchant is unknown here
        assert (
            await portal.post("/orders", json={"store_id": a.store_id, "items": foreign_product}, headers=b.as_merchant)
        ).status_code == 404
    # Lists never show another tenant's rows.
    for path in ("/orders", "/stores", "/products"):
        for intruder in (b.as_merchant, b.as_device):
            items = (await portal.get(path, headers=intruder)).json()["items"]
            assert all(item.get("merchant_id", b.merchant_id) == b.merchant_id for item in items), path
    assert (await portal.get("/orders", params={"store_id": a.store_id}, headers=b.as_merchant)).json()["items"] == []
    assert (await portal.get(f"/orders/{order['id']}", headers=a.as_merchant)).status_code == 200


async def test_a_device_sees_only_its_own_store(portal: httpx.AsyncClient, tenant: Tenant) -> None:
    items = [{"product_id": tenant.products[0]["id"], "quantity": 1}]
    other_store_order = await portal.post(
        "/orders", json={"store_id": tenant.other_store_id, "items": items}, headers=tenant.as_merchant
    )
    assert other_store_order.status_code == 201
    order_id = other_store_order.json()["id"]
    assert (await portal.get(f"/orders/{order_id}", headers=tenant.as_device)).status_code == 404
    assert (await portal.get(f"/stores/{tenant.other_store_id}", headers=tenant.as_device)).status_code == 404
    assert order_id not in {o["id"] for o in (await portal.get("/orders", headers=tenant.as_device)).json()["items"]}
    forbidden = await portal.post(
        "/orders", json={"store_id": tenant.other_store_id, "items": items}, headers=tenant.as_device
    )
    assert forbidden.status_code == 403
    # ...but the whole merchant catalog.
    assert len((await portal.get("/products", headers=tenant.as_device)).json()["items"]) == 2


async def test_roles_are_enforced(portal: httpx.AsyncClient, tenant: Tenant) -> None:
    assert (
        await portal.post("/merchants", json={"name": "x", "currency": "JPY"}, headers=tenant.as_merchant)
    ).status_code == 403
    assert (await portal.post("/stores", json={"name": "x"}, headers=tenant.as_device)).status_code == 403
    assert (
        await portal.post("/products", json={"name": "x", "unit_price": 1}, headers=tenant.as_device)
    ).status_code == 403
    assert (
        await portal.post("/stores", json={"name": "x", "merchant_id": new_id("mer")}, headers=tenant.as_merchant)
    ).status_code == 404


async def test_every_endpoint_needs_a_token(portal: httpx.AsyncClient, tenant: Tenant) -> None:
    paths = [
        "/orders",
        "/stores",
        "/products",
        f"/orders/{new_id('ord')}",
        f"/bills/{new_id('bil')}",
        f"/payments/{new_id('pay')}",
    ]
    for path in paths:
        response = await portal.get(path)
        assert response.status_code == 401 and response.headers["www-authenticate"].startswith("Bearer"), path
    assert (await portal.post("/orders", json={})).status_code == 401


async def test_order_lists_paginate_and_filter(portal: httpx.AsyncClient, tenant: Tenant) -> None:
    ids = [(await ring_up(portal, tenant))["id"] for _ in range(5)]
    await portal.patch(f"/orders/{ids[0]}", json={"status": "canceled"}, headers=tenant.as_device)
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, str | int] = {"limit": 2, "status": "open"}
        if cursor:
            params["cursor"] = cursor
        page = (await portal.get("/orders", params=params, headers=tenant.as_device)).json()
        seen += [o["id"] for o in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == sorted(ids[1:], reverse=True)


HOSTILE_ORDERS = {
    "items missing": {},
    "items empty": {"items": []},
    "items not a list": {"items": "lots"},
    "quantity zero": {"items": [{"product_id": "PRODUCT", "quantity": 0}]},
    "quantity negative": {"items": [{"product_id": "PRODUCT", "quantity": -3}]},
    "quantity huge": {"items": [{"product_id": "PRODUCT", "quantity": 10**12}]},
    "quantity float": {"items": [{"product_id": "PRODUCT", "quantity": 1.5}]},
    "quantity string": {"items": [{"product_id": "PRODUCT", "quantity": "2"}]},
    "quantity bool": {"items": [{"product_id": "PRODUCT", "quantity": True}]},
    "product id malformed": {"items": [{"product_id": "'; DROP TABLE orders; --", "quantity": 1}]},
    "product unknown": {"items": [{"product_id": new_id("prd"), "quantity": 1}]},
    "unknown field": {"items": [{"product_id": "PRODUCT", "quantity": 1}], "total_amount": 1},
    "too many items": {"items": [{"product_id": "PRODUCT", "quantity": 1}] * 101},
    "store id malformed": {"store_id": "sto_nope", "items": [{"product_id": "PRODUCT", "quantity": 1}]},
}


@pytest.mark.parametrize("case", sorted(HOSTILE_ORDERS))
async def test_hostile_orders_are_4xx_and_change_nothing(
    portal: httpx.AsyncClient, portal_app: FastAPI, tenant: Tenant, case: str
) -> None:
    import json

    body = json.loads(json.dumps(HOSTILE_ORDERS[case]).replace("PRODUCT", tenant.products[0]["id"]))
    before = await _count(portal_app, "orders", tenant.merchant_id)
    response = await portal.post("/orders", json=body, headers=tenant.as_merchant)
    assert 400 <= response.status_code < 500, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert await _count(portal_app, "orders", tenant.merchant_id) == before


@pytest.mark.parametrize(
    "body",
    [
        {"amount": 0, "method": "cash"},
        {"amount": -100, "method": "cash"},
        {"amount": 10**13, "method": "cash"},
        {"amount": 2**63, "method": "cash"},
        {"amount": 100.5, "method": "cash"},
        {"amount": "100", "method": "cash"},
        {"amount": None, "method": "cash"},
        {"amount": 100, "method": "bitcoin"},
        {"amount": 100},
        {"method": "cash"},
    ],
    ids=lambda b: ",".join(f"{k}={v!r}"[:24] for k, v in b.items()),
)
async def test_hostile_payments_are_422_and_change_nothing(
    portal: httpx.AsyncClient, portal_app: FastAPI, tenant: Tenant, body: dict[str, object]
) -> None:
    order = await ring_up(portal, tenant)
    b = await bill(portal, tenant, order["id"])
    response = await portal.post("/payments", json={"bill_id": b["id"], **body}, headers=tenant.as_device)
    assert response.status_code == 422, response.text
    assert response.json()["errors"] or response.json()["detail"]
    assert await _count(portal_app, "payments", tenant.merchant_id, "bill_id", b["id"]) == 0


async def test_bad_json_oversized_bodies_and_bad_ids(portal: httpx.AsyncClient, tenant: Tenant) -> None:
    headers = {**tenant.as_merchant, "content-type": "application/json"}
    assert (await portal.post("/orders", content=b'{"items": [', headers=headers)).status_code == 422
    assert (await portal.post("/orders", content=b"x" * (65 * 1024), headers=headers)).status_code == 413
    assert (await portal.get("/orders/not-an-id", headers=tenant.as_merchant)).status_code == 422
    assert (await portal.get(f"/orders/{new_id('ord')}", headers=tenant.as_merchant)).status_code == 404
    assert (await portal.get("/orders", params={"limit": 10_000}, headers=tenant.as_merchant)).status_code == 422
    assert (await portal.get("/orders", params={"cursor": "%%%"}, headers=tenant.as_merchant)).status_code == 422
    assert (await portal.get("/orders", params={"status": "lost"}, headers=tenant.as_merchant)).status_code == 422
    assert (
        await portal.post("/merchants", json={"name": "x", "currency": "XXX"}, headers=tenant.as_merchant)
    ).status_code in (403, 422)
    assert (
        await portal.post("/products", json={"name": "", "unit_price": 1}, headers=tenant.as_merchant)
    ).status_code == 422
    assert (
        await portal.post("/products", json={"name": "x", "unit_price": -1}, headers=tenant.as_merchant)
    ).status_code == 422
    dup = await portal.post(
        "/products", json={"name": "x", "unit_price": 1, "sku": "SKU-0"}, headers=tenant.as_merchant
    )
    assert dup.status_code == 409


async def _count(
    app: FastAPI, table: str, merchant_id: str, column: str | None = None, value: str | None = None
) -> int:
    where = "merchant_id = :m" + (f" AND {column} = :v" if column else "")
    async with app.state.engine.connect() as conn:
        return int(
            await conn.scalar(text(f"SELECT count(*) FROM {table} WHERE {where}"), {"m": merchant_id, "v": value})
        )
