"""Idempotency-Key (Stripe semantics) and the versioned order/bill cache."""

from __future__ import annotations

import asyncio
import json
import uuid

import httpx
from fastapi import FastAPI
from sqlalchemy import text

from smartpos_shared.cache import CachedResource
from tests.portal.helpers import bill, ring_up
from tests.support.auth_fixtures import RegisterDevice
from tests.support.portal_fixtures import MakeTenant, Tenant, bearer


def key() -> dict[str, str]:
    return {"Idempotency-Key": uuid.uuid4().hex}


async def test_same_key_and_body_returns_the_first_response(
    portal: httpx.AsyncClient, portal_app: FastAPI, tenant: Tenant
) -> None:
    order = await ring_up(portal, tenant)
    b = await bill(portal, tenant, order["id"])
    headers = {**tenant.as_device, **key()}
    body = {"bill_id": b["id"], "amount": 300, "method": "cash"}
    first = await portal.post("/payments", json=body, headers=headers)
    again = await portal.post("/payments", json=body, headers=headers)
    assert first.status_code == again.status_code == 201
    assert first.json() == again.json()
    assert again.headers["idempotent-replayed"] == "true"
    async with portal_app.state.engine.connect() as conn:
        count = await conn.scalar(text("SELECT count(*) FROM payments WHERE bill_id = :b"), {"b": b["id"]})
    assert count == 1
    assert (await portal.get(f"/bills/{b['id']}", headers=tenant.as_device)).json()["paid_amount"] == 300

    # Outside a certification run a replay writes nothing; inside one (sandbox header) it is evidence, an event.
    run = "crt_01KAAAAAAAAAAAAAAAAAAAAAAA"
    assert (
        await portal.post("/payments", json=body, headers={**headers, "SmartPOS-Certification-Run": run})
    ).json() == first.json()
    async with portal_app.state.engine.connect() as conn:
        replays = (
            (
                await conn.execute(
                    text("SELECT payload FROM outbox WHERE type = 'request.replayed' AND subject = :p"),
                    {"p": first.json()["id"]},
                )
            )
            .scalars()
            .all()
        )
    assert len(replays) == 1 and replays[0]["certification_run"] == run
    assert replays[0]["data"]["path"] == "/payments" and replays[0]["data"]["resource_id"] == first.json()["id"]
    assert headers["Idempotency-Key"] not in json.dumps(replays[0])  # its digest only


async def test_same_key_with_another_body_is_422(portal: httpx.AsyncClient, tenant: Tenant) -> None:
    order = await ring_up(portal, tenant)
    b = await bill(portal, tenant, order["id"])
    headers = {**tenant.as_device, **key()}
    assert (
        await portal.post("/payments", json={"bill_id": b["id"], "amount": 300, "method": "cash"}, headers=headers)
    ).status_code == 201
    other = await portal.post("/payments", json={"bill_id": b["id"], "amount": 301, "method": "cash"}, headers=headers)
    assert other.status_code == 422 and other.json()["type"].endswith("idempotency_key_reused")


async def test_a_request_in_flight_with_the_same_key_is_409(
    portal: httpx.AsyncClient, portal_app: FastAPI, tenant: Tenant
) -> None:
    items = [{"product_id": tenant.products[0]["id"], "quantity": 1}]
    headers = {**tenant.as_device, **key()}
    async with portal_app.state.engine.connect() as blocker:
        held = await blocker.begin()
        await blocker.execute(text("LOCK TABLE orders IN EXCLUSIVE MODE"))  # the first request stalls after its claim
        first = asyncio.create_task(portal.post("/orders", json={"items": items}, headers=headers))
        await asyncio.sleep(0.3)
        second = await portal.post("/orders", json={"items": items}, headers=headers)
        assert second.status_code == 409 and second.json()["type"].endswith("/idempotency_in_flight")
        await held.rollback()
    created = await first
    assert created.status_code == 201
    replay = await portal.post("/orders", json={"items": items}, headers=headers)
    assert replay.status_code == 201 and replay.json()["id"] == created.json()["id"]


async def test_eight_concurrent_copies_create_one_order(portal: httpx.AsyncClient, tenant: Tenant) -> None:
    items = [{"product_id": tenant.products[0]["id"], "quantity": 1}]
    headers = {**tenant.as_device, **key()}
    responses = await asyncio.gather(
        *(portal.post("/orders", json={"items": items}, headers=headers) for _ in range(8))
    )
    assert {r.status_code for r in responses} <= {201, 409}
    assert len({r.json()["id"] for r in responses if r.status_code == 201}) == 1  # replays of the first only


async def test_keys_are_per_merchant(portal: httpx.AsyncClient, make_tenant: MakeTenant) -> None:
    a, b = await make_tenant(), await make_tenant()
    shared = key()
    first = await portal.post(
        "/orders",
        json={"items": [{"product_id": a.products[0]["id"], "quantity": 1}]},
        headers={**a.as_device, **shared},
    )
    second = await portal.post(
        "/orders",
        json={"items": [{"product_id": b.products[0]["id"], "quantity": 1}]},
        headers={**b.as_device, **shared},
    )
    assert first.status_code == second.status_code == 201
    assert first.json()["merchant_id"] == a.merchant_id and second.json()["merchant_id"] == b.merchant_id


async def test_a_failed_request_frees_its_key(portal: httpx.AsyncClient, tenant: Tenant) -> None:
    order = await ring_up(portal, tenant)
    b = await bill(portal, tenant, order["id"])
    headers = {**tenant.as_device, **key()}
    too_much = {"bill_id": b["id"], "amount": 999999, "method": "cash"}
    assert (await portal.post("/payments", json=too_much, headers=headers)).status_code == 422
    assert (await portal.post("/payments", json={**too_much, "amount": 1200}, headers=headers)).status_code == 201


async def test_idempotency_keys_must_be_sane(portal: httpx.AsyncClient, tenant: Tenant) -> None:
    items = [{"product_id": tenant.products[0]["id"], "quantity": 1}]
    for bad in ("", "x" * 256, "has space"):
        response = await portal.post(
            "/orders", json={"items": items}, headers={**tenant.as_device, "Idempotency-Key": bad}
        )
        assert response.status_code == 422, bad


async def _cached(portal_app: FastAPI, order_id: str) -> dict | None:  # type: ignore[type-arg]
    raw = await portal_app.state.redis.get(f"order:{order_id}")
    return None if raw is None else json.loads(raw)


async def test_cache_is_written_on_create_and_read_and_gone_after_a_change(
    portal: httpx.AsyncClient, portal_app: FastAPI, tenant: Tenant
) -> None:
    order = await ring_up(portal, tenant)
    cached = await _cached(portal_app, order["id"])
    assert cached is not None and cached["version"] == 1 and cached["data"]["id"] == order["id"]
    await portal_app.state.redis.delete(f"order:{order['id']}")
    await portal.get(f"/orders/{order['id']}", headers=tenant.as_device)
    assert (await _cached(portal_app, order["id"]))["data"]["status"] == "open"  # type: ignore[index]

    await portal.patch(f"/orders/{order['id']}", json={"status": "completed"}, headers=tenant.as_device)
    assert await _cached(portal_app, order["id"]) is None  # gone after the change
    read = (await portal.get(f"/orders/{order['id']}", headers=tenant.as_device)).json()
    assert read["status"] == "completed" and read["version"] == 2
    assert (await _cached(portal_app, order["id"]))["version"] == 2  # type: ignore[index]


async def test_a_stale_read_can_never_be_written_back_after_a_newer_commit(
    portal: httpx.AsyncClient, portal_app: FastAPI, tenant: Tenant
) -> None:
    order = await ring_up(portal, tenant)
    stale = CachedResource(1, order["merchant_id"], order["store_id"], json.dumps(order).encode())  # a slow read
    await portal.patch(f"/orders/{order['id']}", json={"status": "canceled"}, headers=tenant.as_device)
    assert await portal_app.state.services.cache.put("order", order["id"], stale) is False
    assert await _cached(portal_app, order["id"]) is None
    assert (await portal.get(f"/orders/{order['id']}", headers=tenant.as_device)).json()["status"] == "canceled"


async def test_a_cached_order_gets_the_same_tenant_check_as_the_database(
    portal: httpx.AsyncClient,
    portal_app: FastAPI,
    make_tenant: MakeTenant,
) -> None:
    a, b = await make_tenant(), await make_tenant()
    order = await ring_up(portal, a)
    assert await _cached(portal_app, order["id"]) is not None
    assert (await portal.get(f"/orders/{order['id']}", headers=b.as_merchant)).status_code == 404
    assert (await portal.get(f"/orders/{order['id']}", headers=b.as_device)).status_code == 404


async def test_bills_are_cached_and_invalidated_too(
    portal: httpx.AsyncClient, portal_app: FastAPI, tenant: Tenant
) -> None:
    order = await ring_up(portal, tenant)
    b = await bill(portal, tenant, order["id"])
    assert await portal_app.state.redis.get(f"bill:{b['id']}") is not None
    await portal.post("/payments", json={"bill_id": b["id"], "amount": 100, "method": "cash"}, headers=tenant.as_device)
    assert await portal_app.state.redis.get(f"bill:{b['id']}") is None
    assert (await portal.get(f"/bills/{b['id']}", headers=tenant.as_device)).json()["paid_amount"] == 100


async def test_keys_are_per_principal_so_another_store_never_gets_a_replay(
    portal: httpx.AsyncClient, auth: httpx.AsyncClient, tenant: Tenant, register_device: RegisterDevice
) -> None:
    """A device of store 2 reusing store 1's key and body: its own order is created, store 1's is never shown;
    on payments it gets the 404 it gets for store 1's bill anyway."""
    other = await register_device(merchant_id=tenant.merchant_id, store_id=tenant.other_store_id)
    other_device = bearer((await auth.post("/oauth/token", data=other.form())).json()["access_token"])
    shared = key()
    items = [{"product_id": tenant.products[0]["id"], "quantity": 1}]
    first = await portal.post("/orders", json={"items": items}, headers={**tenant.as_device, **shared})
    second = await portal.post("/orders", json={"items": items}, headers={**other_device, **shared})
    assert first.status_code == second.status_code == 201
    assert second.json()["id"] != first.json()["id"] and second.json()["store_id"] == tenant.other_store_id
    assert "idempotent-replayed" not in second.headers
    b = await bill(portal, tenant, first.json()["id"])
    body = {"bill_id": b["id"], "amount": 100, "method": "cash"}
    pay_key = key()
    assert (await portal.post("/payments", json=body, headers={**tenant.as_device, **pay_key})).status_code == 201
    intruder = await portal.post("/payments", json=body, headers={**other_device, **pay_key})
    assert intruder.status_code == 404, intruder.text
    assert "pay_" not in intruder.text


async def test_a_stored_response_is_replayed_only_after_the_tenant_check(
    portal: httpx.AsyncClient, portal_app: FastAPI, make_tenant: MakeTenant
) -> None:
    """Defence in depth: even a key row that names a foreign resource under the caller's own key is not shown."""
    a, b = await make_tenant(), await make_tenant()
    order = await ring_up(portal, a)
    items = [{"product_id": b.products[0]["id"], "quantity": 1}]
    planted = key()
    first = await portal.post("/orders", json={"items": items}, headers={**b.as_device, **planted})
    assert first.status_code == 201
    async with portal_app.state.sessionmaker() as session, session.begin():
        await session.execute(
            text("UPDATE idempotency_keys SET response_body = CAST(:body AS jsonb) WHERE key = :key"),
            {"body": json.dumps(order), "key": planted["Idempotency-Key"]},
        )
    replay = await portal.post("/orders", json={"items": items}, headers={**b.as_device, **planted})
    assert replay.status_code == 404 and order["id"] not in replay.text
