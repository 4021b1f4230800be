"""The console in process (real lifespan: database, Redis, NATS), trusting the in-process device-auth's keys; and
partner clients as admins create them."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from console.main import build_app
from console.settings import ConsoleSettings
from tests.support.apps import BusinessClock, Clock, running
from tests.support.auth_fixtures import ISSUER, basic
from tests.support.databases import TestDatabase, drop, migrate_to_head, recreate
from tests.support.databases import test_database as database_for
from tests.support.environment import nats_url, redis_url

CONSOLE = "http://console.test"


@pytest.fixture(scope="session")
async def console_app(databases: dict[str, TestDatabase], auth_app: FastAPI) -> AsyncIterator[FastAPI]:
    async def jwks() -> dict[str, Any]:
        keys: dict[str, Any] = await auth_app.state.keyring.jwks()
        return keys

    settings = ConsoleSettings(
        database_url=databases["console"].url,
        auth_issuer=ISSUER,
        redis_url=redis_url(),
        nats_url=nats_url(),
        access_log=False,
        # This run's own evidence consumer, from now on, deleted when idle: not the stream's whole history.
        evidence_projector_durable=f"console-evidence-test-{uuid.uuid4().hex[:12]}",
        evidence_projector_start="new",
        evidence_projector_inactive_seconds=900,
        pilot_projector_durable=f"console-pilot-test-{uuid.uuid4().hex[:12]}",
        pilot_projector_start="new",
        pilot_projector_inactive_seconds=900,
        audit_projector_durable=f"console-audit-test-{uuid.uuid4().hex[:12]}",
        audit_projector_start="new",
        audit_projector_inactive_seconds=900,
        pilot_min_payments=2,  # the tests' pilots take a handful of payments, not a shop's week
    )
    app = build_app(settings, jwks_loader=jwks)
    app.state.clock = Clock()
    app.state.business_clock = BusinessClock(app.state.clock)  # rollout windows move; tokens keep real time
    async with running(app, CONSOLE):
        yield app


@pytest.fixture(scope="session")
def production_console_database(databases: dict[str, TestDatabase]) -> Iterator[TestDatabase]:
    """A second console database, standing for production's (built once per run, by the real migrations)."""
    db = database_for("console", "_production")
    asyncio.run(recreate(db))
    migrate_to_head(db)
    yield db
    asyncio.run(drop(db))


@pytest.fixture
async def console(console_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=console_app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url=CONSOLE) as client:
        yield client


@dataclass(frozen=True)
class Partner:
    client_id: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


MakePartner = Callable[[], Awaitable[Partner]]


@pytest.fixture
def make_partner(auth: httpx.AsyncClient, admin_token: str) -> MakePartner:
    async def make() -> Partner:
        created = await auth.post(
            "/clients",
            json={"role": "partner", "name": "Acme POS"},
            headers={"Authorization": f"Bearer {admin_token}"},
        )
        assert created.status_code == 201, created.text
        client = created.json()
        token = await auth.post(
            "/oauth/token",
            data={"grant_type": "client_credentials"},
            headers=basic(client["client_id"], client["client_secret"]),
        )
        assert token.status_code == 200, token.text
        return Partner(client["client_id"], token.json()["access_token"])

    return make
