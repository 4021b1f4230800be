"""Merchant configuration (issue 16): the document and its JSON Schema, and what an applied configuration changes
at the till at once — a payment method it disables is refused (online and offline), until reverted. Every portal
process follows configurations (NOTIFY smartpos_config), so the check costs no statement."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI

from portal.config.document import schema
from tests.portal.helpers import bill, pay, ring_up
from tests.portal.test_tenant_scoped_queries import reviewer
from tests.support.portal_fixtures import Tenant, bearer

SCHEMA_FILE = Path(__file__).resolve().parents[2] / "docs" / "config.schema.json"


def code(response: httpx.Response) -> str:
    return str(response.json()["type"]).rsplit("/", 1)[-1]


async def test_the_published_schema_is_the_one_the_portal_validates_with(
    portal: httpx.AsyncClient, tenant: Tenant
) -> None:
    served = await portal.get("/config/schema", headers=tenant.as_merchant)
    assert served.status_code == 200
    assert served.json() == schema() == json.loads(SCHEMA_FILE.read_text())
    live = (await portal.get("/config", headers=tenant.as_merchant)).json()
    assert live["version"] == 0 and live["document"]["payment_methods"] == ["card", "qr", "cash", "credit"]
    assert [i["sku"] for i in live["document"]["catalog"]] == ["SKU-0", "SKU-1"]
    assert (await portal.get("/config", headers=tenant.as_device)).status_code == 403


async def until_refused(portal: httpx.AsyncClient, tenant: Tenant, bill_id: str) -> httpx.Response:
    deadline = time.monotonic() + 2
    while True:
        response = await pay(portal, tenant, bill_id, 100, "card")
        if response.status_code == 422 or time.monotonic() > deadline:
            return response
        await asyncio.sleep(0.02)


async def test_a_payment_method_the_configuration_disables_is_refused_until_reverted(
    portal: httpx.AsyncClient, auth: httpx.AsyncClient, auth_app: FastAPI, tenant: Tenant, admin_token: str
) -> None:
    admin = bearer(admin_token)
    reviewers = [await reviewer(auth, auth_app), await reviewer(auth, auth_app)]
    document: dict[str, Any] = (await portal.get("/config", headers=tenant.as_merchant)).json()["document"]
    change = await portal.post(
        "/change-requests",
        json={"merchant_id": tenant.merchant_id, "bundle": {"document": {**document, "payment_methods": ["cash"]}}},
        headers=admin,
    )
    assert change.status_code == 201, change.text
    assert change.json()["diff"] == [
        {"path": "payment_methods", "from": ["card", "qr", "cash", "credit"], "to": ["cash"]}
    ]
    for headers in reviewers:
        approved = await portal.post(f"/change-requests/{change.json()['id']}/approvals", headers=headers)
    assert approved.json()["status"] == "applied", approved.text

    order = await ring_up(portal, tenant)
    billed = await bill(portal, tenant, order["id"])
    refused = await until_refused(portal, tenant, billed["id"])
    assert (refused.status_code, code(refused)) == (422, "payment_method_disabled")
    assert (await pay(portal, tenant, billed["id"], 100, "cash")).status_code == 201
    taken_at = datetime.now(UTC).isoformat()
    synced = await portal.post(
        "/sync",
        json={"orders": [{"client_order_id": f"off-{uuid.uuid4().hex[:8]}", "taken_at": taken_at,
                          "items": [{"product_id": tenant.products[0]["id"], "quantity": 1}],
                          "payments": [{"client_payment_id": f"p-{uuid.uuid4().hex[:8]}", "method": "card",
                                        "amount": tenant.products[0]["unit_price"]}]}]},
        headers=tenant.as_device,
    )  # fmt: skip
    assert synced.json()["results"][0] == {**synced.json()["results"][0], "status": "rejected",
                                           "reason": "payment_method_disabled"}  # fmt: skip

    reverted = await portal.post(f"/change-requests/{change.json()['id']}/revert", headers=reviewers[0])
    assert reverted.json()["status"] == "reverted", reverted.text
    deadline = time.monotonic() + 2
    while (response := await pay(portal, tenant, billed["id"], 100, "card")).status_code != 201:
        assert time.monotonic() < deadline, response.text
        await asyncio.sleep(0.02)
