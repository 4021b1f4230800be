"""Redis down: reads and writes still work from PostgreSQL (slower, never failing)."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from portal.main import build_app
from tests.portal.helpers import bill, ring_up
from tests.support.apps import running
from tests.support.databases import TestDatabase
from tests.support.portal_fixtures import PORTAL, Tenant, portal_settings
from tests.support.processes import PrivateRedis


async def test_portal_serves_reads_and_writes_while_redis_is_down(
    databases: dict[str, TestDatabase], auth_app: FastAPI, tenant: Tenant
) -> None:
    async def jwks() -> dict[str, Any]:
        keys: dict[str, Any] = await auth_app.state.keyring.jwks()
        return keys

    redis = PrivateRedis().start()
    app = build_app(portal_settings(databases, redis_url=redis.url), jwks_loader=jwks)
    try:
        async with running(app, PORTAL) as portal:
            order = await ring_up(portal, tenant)
            assert await app.state.redis.get(f"order:{order['id']}") is not None
            redis.stop()
            read = await portal.get(f"/orders/{order['id']}", headers=tenant.as_device)
            assert read.status_code == 200 and read.json()["id"] == order["id"]
            b = await bill(portal, tenant, order["id"])
            paid = await portal.post(
                "/payments", json={"bill_id": b["id"], "amount": 1200, "method": "cash"}, headers=tenant.as_device
            )
            assert paid.status_code == 201
            assert (await portal.get(f"/orders/{order['id']}", headers=tenant.as_device)).json()[
                "status"
            ] == "completed"
            assert (await portal.get("/readyz")).status_code == 503
    finally:
        redis.stop()
