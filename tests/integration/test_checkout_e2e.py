"""The whole checkout as a terminal sees it, against real processes: device-auth and portal under uvicorn,
tokens verified with the JWKS fetched over HTTP, and the mock gateway confirming by signed webhook."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import httpx
import pytest

from device_auth.clients.bootstrap import bootstrap
from device_auth.settings import AuthSettings
from tests.support.databases import TestDatabase
from tests.support.keys import DeviceKey, assertion_form
from tests.support.processes import ServiceProcess, wait_for


@pytest.fixture(scope="module")
def stack(service_env: dict[str, str]) -> Iterator[dict[str, ServiceProcess]]:
    auth = ServiceProcess("device-auth", service_env)
    portal = ServiceProcess("portal", service_env)
    for proc in (auth, portal):
        proc.env.update(
            {"SMARTPOS_AUTH_ISSUER": auth.url, "SMARTPOS_PGW_MODE": "mock", "PORTAL_PORT": str(portal.port)}
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
