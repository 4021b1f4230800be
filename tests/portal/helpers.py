from __future__ import annotations

from typing import Any

import httpx

from tests.support.portal_fixtures import Tenant, signed_webhook


async def ring_up(portal: httpx.AsyncClient, tenant: Tenant, quantities: tuple[int, ...] = (1, 1)) -> dict[str, Any]:
    items = [{"product_id": p["id"], "quantity": q} for p, q in zip(tenant.products, quantities, strict=False)]
    response = await portal.post("/orders", json={"items": items}, headers=tenant.as_device)
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


async def bill(portal: httpx.AsyncClient, tenant: Tenant, order_id: str) -> dict[str, Any]:
    response = await portal.post("/bills", json={"order_id": order_id}, headers=tenant.as_device)
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


async def pay(
    portal: httpx.AsyncClient, tenant: Tenant, bill_id: str, amount: int, method: str = "card"
) -> httpx.Response:
    return await portal.post(
        "/payments", json={"bill_id": bill_id, "amount": amount, "method": method}, headers=tenant.as_device
    )


async def webhook(
    portal: httpx.AsyncClient, event_id: str, reference: str, amount: int, kind: str = "payment.succeeded"
) -> httpx.Response:
    event = {"id": event_id, "type": kind, "data": {"pgw_reference": reference, "amount": amount}}
    return await portal.post("/webhooks/pgw", **signed_webhook(event))
