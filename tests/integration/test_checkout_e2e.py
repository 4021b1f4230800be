"""The whole checkout as a terminal sees it, against real processes: device-auth and portal under uvicorn,
tokens verified with the JWKS fetched over HTTP, and the mock gateway confirming by signed webhook."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import httpx
import pytest

from device_auth.clients.bootstrap import bootstrap
from device_auth.settings import AuthSettings
from tests.support.databases import TestDatabase
from tests.support.keys import DeviceKey, assertion_form
from tests.support.processes import ServiceProcess, wait_for

# Long enough for a terminal to void a card payment before the mock gateway confirms it.
MOCK_DELAY_SECONDS = 0.5


@pytest.fixture(scope="module")
def stack(service_env: dict[str, str]) -> Iterator[dict[str, ServiceProcess]]:
    auth = ServiceProcess("device-auth", service_env)
    portal = ServiceProcess("portal", service_env)
    for proc in (auth, portal):
        proc.env.update(
            {
                "SMARTPOS_AUTH_ISSUER": auth.url,
                "SMARTPOS_PGW_MODE": "mock",
                "SMARTPOS_PGW_MOCK_DELAY": str(MOCK_DELAY_SECONDS),
                "PORTAL_PORT": str(portal.port),
            }
        )
    try:
        auth.start()
        portal.start()
        yield {"auth": auth, "portal": portal}
    finally:
        portal.stop()
        auth.stop()


def test_a_terminal_checks_out_with_the_mock_gateway(
    stack: dict[str, ServiceProcess], databases: dict[str, TestDatabase]
) -> None:
    auth_url, portal_url = stack["auth"].url, stack["portal"].url
    admin = asyncio.run(bootstrap(AuthSettings(database_url=databases["device-auth"].url)))
    admin_token = httpx.post(
        f"{auth_url}/oauth/token",
        data={"grant_type": "client_credentials"},
        auth=(admin["client_id"], admin["client_secret"]),
    ).json()["access_token"]
    as_admin = {"Authorization": f"Bearer {admin_token}"}

    merchant = httpx.post(f"{portal_url}/merchants", json={"name": "Kissa", "currency": "JPY"}, headers=as_admin).json()
    store = httpx.post(
        f"{portal_url}/stores", json={"name": "Shibuya", "merchant_id": merchant["id"]}, headers=as_admin
    ).json()
    coffee = httpx.post(
        f"{portal_url}/products",
        json={"name": "coffee", "unit_price": 450, "merchant_id": merchant["id"]},
        headers=as_admin,
    ).json()
    key = DeviceKey()
    device = httpx.post(
        f"{auth_url}/devices",
        json={
            "merchant_id": merchant["id"],
            "store_id": store["id"],
            "name": "till",
            "jwks": {"keys": [key.public_jwk]},
        },
        headers=as_admin,
    ).json()

    token = httpx.post(f"{auth_url}/oauth/token", data=assertion_form(key.assertion(device["id"], auth_url))).json()
    assert token["expires_in"] == 120
    as_device = {"Authorization": f"Bearer {token['access_token']}"}

    order = httpx.post(
        f"{portal_url}/orders", json={"items": [{"product_id": coffee["id"], "quantity": 2}]}, headers=as_device
    )
    assert order.status_code == 201, order.text
    bill = httpx.post(f"{portal_url}/bills", json={"order_id": order.json()["id"]}, headers=as_device).json()
    payment = httpx.post(
        f"{portal_url}/payments",
        json={"bill_id": bill["id"], "amount": 900, "method": "card"},
        headers={**as_device, "Idempotency-Key": "till-1-payment-1"},
    )
    assert payment.status_code == 201 and payment.json()["status"] == "pending"

    completed = wait_for(
        lambda: (
            (r := httpx.get(f"{portal_url}/orders/{order.json()['id']}", headers=as_device)).json()["status"]
            == "completed"
            and r
        ),
        10,
        what="order completed by the mock gateway's webhook",
    )
    assert completed.json()["version"] == 2
    paid = httpx.get(f"{portal_url}/bills/{bill['id']}", headers=as_device).json()
    assert paid["status"] == "paid" and paid["paid_at"]
    assert httpx.get(f"{portal_url}/payments/{payment.json()['id']}", headers=as_device).json()["status"] == "succeeded"

    # A card refund goes to the mock gateway, whose signed refund.succeeded webhook settles it.
    refund = httpx.post(
        f"{portal_url}/refunds",
        json={"payment_id": payment.json()["id"], "amount": 400, "reason": "one cup spilled"},
        headers={**as_device, "Idempotency-Key": "till-1-refund-1"},
    )
    assert refund.status_code == 201 and refund.json()["status"] == "pending", refund.text
    wait_for(
        lambda: (
            httpx.get(f"{portal_url}/refunds/{refund.json()['id']}", headers=as_device).json()["status"] == "succeeded"
        ),
        10,
        what="refund settled by the mock gateway's webhook",
    )
    refunded = httpx.get(f"{portal_url}/orders/{order.json()['id']}", headers=as_device).json()
    assert refunded["refunded_amount"] == 400 and refunded["status"] == "completed"

    # A void of a pending card payment: the mock gateway is told and never confirms it.
    second = httpx.post(
        f"{portal_url}/orders", json={"items": [{"product_id": coffee["id"], "quantity": 1}]}, headers=as_device
    ).json()
    second_bill = httpx.post(f"{portal_url}/bills", json={"order_id": second["id"]}, headers=as_device).json()
    pending = httpx.post(
        f"{portal_url}/payments",
        json={"bill_id": second_bill["id"], "amount": 450, "method": "card"},
        headers=as_device,
    ).json()
    voided = httpx.post(f"{portal_url}/payments/{pending['id']}/void", headers=as_device)
    assert voided.status_code == 200 and voided.json()["status"] == "canceled", voided.text
    cash = httpx.post(
        f"{portal_url}/payments",
        json={"bill_id": second_bill["id"], "amount": 450, "method": "cash"},
        headers=as_device,
    )
    assert cash.status_code == 201, cash.text
    time.sleep(MOCK_DELAY_SECONDS * 3)  # the confirmation the mock would have sent
    after = httpx.get(f"{portal_url}/payments/{pending['id']}", headers=as_device).json()
    assert after["status"] == "canceled" and after["captured_after_void_at"] is None
    assert httpx.get(f"{portal_url}/bills/{second_bill['id']}", headers=as_device).json()["paid_amount"] == 450
