"""A portal in process (manual gateway, injected clock) that trusts the in-process device-auth, and tenants
with real tokens: an admin, a merchant API client, and a device signed in with private_key_jwt."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from portal.main import build_app
from portal.pgw.signature import sign
from portal.settings import PortalSettings
from tests.support.apps import BusinessClock, Clock, running
from tests.support.auth_fixtures import ISSUER, RegisterDevice, basic
from tests.support.databases import TestDatabase
from tests.support.environment import nats_url, redis_url
from tests.support.processes import ROOT

PORTAL = "http://portal.test"
WEBHOOK_SECRET = "whsec_test_" + "x" * 32


def portal_settings(databases: dict[str, TestDatabase], **overrides: object) -> PortalSettings:
    values: dict[str, object] = {
        "database_url": databases["portal"].url,
        "auth_issuer": ISSUER,
        "redis_url": redis_url(),
        "nats_url": nats_url(),
        "pgw_mode": "manual",
        "pgw_webhook_secret": WEBHOOK_SECRET,
        "access_log": False,
    }
    values.update(overrides)
    return PortalSettings(**values)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
async def portal_app(databases: dict[str, TestDatabase], auth_app: FastAPI) -> AsyncIterator[FastAPI]:
    async def jwks() -> dict[str, Any]:
        keys: dict[str, Any] = await auth_app.state.keyring.jwks()
        return keys

    app = build_app(portal_settings(databases), jwks_loader=jwks)
    app.state.clock = Clock()
    app.state.business_clock = BusinessClock(app.state.clock)
    async with running(app, PORTAL):
        yield app


@pytest.fixture
async def portal(portal_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=portal_app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url=PORTAL) as client:
        yield client
    portal_app.state.clock.offset = 0.0
    portal_app.state.business_clock.offset = 0.0


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@dataclass
class Tenant:
    """A merchant with a store, two products, a merchant API token and a signed-in device in that store."""

    merchant_id: str
    store_id: str
    products: list[dict[str, Any]]
    merchant_token: str
    device_id: str
    device_token: str
    other_store_id: str
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def as_merchant(self) -> dict[str, str]:
        return bearer(self.merchant_token)

    @property
    def as_device(self) -> dict[str, str]:
        return bearer(self.device_token)


MakeTenant = Callable[..., Awaitable[Tenant]]


@pytest.fixture
def make_tenant(
    portal: httpx.AsyncClient, auth: httpx.AsyncClient, admin_token: str, register_device: RegisterDevice
) -> MakeTenant:
    admin = bearer(admin_token)

    async def make(currency: str = "JPY", prices: tuple[int, ...] = (500, 700)) -> Tenant:
        merchant = await portal.post("/merchants", json={"name": "Kissa", "currency": currency}, headers=admin)
        assert merchant.status_code == 201, merchant.text
        merchant_id = merchant.json()["id"]
        client = (
            await auth.post("/clients", json={"merchant_id": merchant_id, "name": "office"}, headers=admin)
        ).json()
        token = (
            await auth.post(
                "/oauth/token",
                data={"grant_type": "client_credentials"},
                headers=basic(client["client_id"], client["client_secret"]),
            )
        ).json()["access_token"]
        stores = []
        for name in ("Shibuya", "Ueno"):
            response = await portal.post("/stores", json={"name": name}, headers=bearer(token))
            assert response.status_code == 201, response.text
            stores.append(response.json()["id"])
        products = []
        for i, price in enumerate(prices):
            response = await portal.post(
                "/products", json={"name": f"item {i}", "unit_price": price, "sku": f"SKU-{i}"}, headers=bearer(token)
            )
            assert response.status_code == 201, response.text
            products.append(response.json())
        device = await register_device(merchant_id=merchant_id, store_id=stores[0])
        device_token = (await auth.post("/oauth/token", data=device.form())).json()["access_token"]
        return Tenant(merchant_id, stores[0], products, token, device.id, device_token, stores[1], {"device": device})

    return make


@pytest.fixture
async def tenant(make_tenant: MakeTenant) -> Tenant:
    return await make_tenant()


def signed_webhook(event: dict[str, Any], *, secret: str = WEBHOOK_SECRET, at: float | None = None) -> dict[str, Any]:
    body = json.dumps(event).encode()
    return {
        "content": body,
        "headers": {"content-type": "application/json", "PGW-Signature": sign(secret, int(at or time.time()), body)},
    }


def scheduler(env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    """`python -m portal.scheduler ARGS` as operators run it, with `env` on top of this process's environment."""
    return subprocess.Popen(
        [sys.executable, "-m", "portal.scheduler", *args],
        cwd=ROOT,
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.fixture
def scheduler_env(service_env: dict[str, str]) -> dict[str, str]:
    return {
        **service_env,
        "SMARTPOS_PGW_MODE": "manual",
        "SMARTPOS_PGW_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "SCHEDULER_CONCURRENCY": "2",
        "REDIS_URL": redis_url(),
    }
