from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import httpx
import pytest
from fastapi import FastAPI

from device_auth.clients.bootstrap import bootstrap
from device_auth.main import build_app
from device_auth.settings import AuthSettings
from smartpos_shared.ids import new_id
from tests.support.apps import Clock, running
from tests.support.databases import TestDatabase
from tests.support.environment import nats_url, redis_url
from tests.support.keys import DeviceKey, assertion_form

ISSUER = "http://auth.test"


def auth_settings(databases: dict[str, TestDatabase], **overrides: object) -> AuthSettings:
    values: dict[str, object] = {
        "database_url": databases["device-auth"].url,
        "auth_issuer": ISSUER,
        "redis_url": redis_url(),
        "nats_url": nats_url(),
        "access_log": False,
    }
    values.update(overrides)
    return AuthSettings(**values)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
async def auth_app(databases: dict[str, TestDatabase]) -> AsyncIterator[FastAPI]:
    app = build_app(auth_settings(databases))
    app.state.clock = Clock()
    async with running(app, ISSUER):
        yield app


@pytest.fixture
async def auth(auth_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=auth_app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url=ISSUER) as client:
        yield client
    auth_app.state.clock.offset = 0.0


@pytest.fixture(scope="session")
async def admin_credentials(databases: dict[str, TestDatabase]) -> dict[str, str]:
    return await bootstrap(auth_settings(databases))


def basic(client_id: str, secret: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()}


@pytest.fixture
async def admin_token(auth: httpx.AsyncClient, admin_credentials: dict[str, str]) -> str:
    response = await auth.post(
        "/oauth/token",
        data={"grant_type": "client_credentials"},
        headers=basic(admin_credentials["client_id"], admin_credentials["client_secret"]),
    )
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


@dataclass
class RegisteredDevice:
    id: str
    merchant_id: str
    store_id: str
    key: DeviceKey

    def form(self, **assertion_options: object) -> dict[str, str]:
        return assertion_form(self.key.assertion(self.id, ISSUER, **assertion_options))  # type: ignore[arg-type]


RegisterDevice = Callable[..., Awaitable[RegisteredDevice]]


@pytest.fixture
def register_device(auth: httpx.AsyncClient, admin_token: str) -> RegisterDevice:
    async def register(merchant_id: str | None = None, store_id: str | None = None) -> RegisteredDevice:
        key = DeviceKey()
        merchant_id = merchant_id or new_id("mer")
        store_id = store_id or new_id("sto")
        response = await auth.post(
            "/devices",
            json={
                "merchant_id": merchant_id,
                "store_id": store_id,
                "name": "till 1",
                "jwks": {"keys": [key.public_jwk]},
            },
            headers={"Authorization": f"Bearer {admin_token}"},
        )
        assert response.status_code == 201, response.text
        return RegisteredDevice(response.json()["id"], merchant_id, store_id, key)

    return register


def claims_of(token: str) -> dict[str, object]:
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))  # type: ignore[no-any-return]
