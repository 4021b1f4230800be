from __future__ import annotations

import asyncio
import base64
import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import nats
import pytest
from fastapi import FastAPI

from device_auth.clients.bootstrap import bootstrap
from device_auth.main import build_app
from device_auth.settings import AuthSettings
from smartpos_shared.events import ensure_stream
from smartpos_shared.ids import new_id
from tests.support.apps import Clock, running
from tests.support.databases import TestDatabase
from tests.support.environment import nats_url, redis_url
from tests.support.keys import DeviceKey, assertion_form

ISSUER = "http://auth.test"
# The web client browsers sign in through in the tests (a public client: no secret, this exact redirect URI).
DASHBOARD = "smartpos-dashboard"
DASHBOARD_CALLBACK = "http://dashboard.test/callback"


# This run's own store projector consumer, from now on, deleted when idle: not the stream's whole history.
STORE_PROJECTOR = {
    "store_projector_durable": f"device-auth-test-{uuid.uuid4().hex[:12]}",
    "store_projector_start": "new",
    "store_projector_inactive_seconds": 900,  # idle while sync tests hold the loop
}


def auth_settings(databases: dict[str, TestDatabase], **overrides: object) -> AuthSettings:
    values: dict[str, object] = {
        "database_url": databases["device-auth"].url,
        "auth_issuer": ISSUER,
        "redis_url": redis_url(),
        "nats_url": nats_url(),
        "access_log": False,
        "web_clients": {DASHBOARD: [DASHBOARD_CALLBACK]},
        **STORE_PROJECTOR,
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


async def announce_store(merchant_id: str, store_id: str) -> None:
    """Publish `store.created` as the portal does, for tests of device-auth alone (no portal store behind it)."""
    event_id = new_id("evt")
    event = {
        "id": event_id,
        "type": "store.created",
        "source": "portal",
        "time": datetime.now(UTC).isoformat(),
        "merchant_id": merchant_id,
        "store_id": store_id,
        "subject": store_id,
        "version": 1,
        "data": {"id": store_id, "merchant_id": merchant_id, "name": "test store"},
    }
    client = await nats.connect(nats_url())
    try:
        js = await ensure_stream(client)
        await js.publish(
            f"smartpos.{merchant_id}.store.created", json.dumps(event).encode(), headers={"Nats-Msg-Id": event_id}
        )
    finally:
        await client.close()


async def post_device(auth: httpx.AsyncClient, token: str, body: dict[str, Any], wait: float = 5.0) -> httpx.Response:
    """POST /devices as a client would right after creating the store: retried while the store is not known yet
    (device-auth learns stores from events, within a second)."""
    deadline = time.monotonic() + wait
    while True:
        response = await auth.post("/devices", json=body, headers={"Authorization": f"Bearer {token}"})
        if response.status_code != 404 or time.monotonic() > deadline:
            return response
        await asyncio.sleep(0.02)


@pytest.fixture
def register_device(auth: httpx.AsyncClient, admin_token: str) -> RegisterDevice:
    async def register(merchant_id: str | None = None, store_id: str | None = None) -> RegisteredDevice:
        key = DeviceKey()
        if store_id is None:
            merchant_id, store_id = merchant_id or new_id("mer"), new_id("sto")
            await announce_store(merchant_id, store_id)
        assert merchant_id is not None
        body = {"merchant_id": merchant_id, "store_id": store_id, "name": "till 1", "jwks": {"keys": [key.public_jwk]}}
        response = await post_device(auth, admin_token, body)
        assert response.status_code == 201, response.text
        return RegisteredDevice(response.json()["id"], merchant_id, store_id, key)

    return register


def claims_of(token: str) -> dict[str, object]:
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))  # type: ignore[no-any-return]
