"""Rollouts (issue 15, "Done when"): an integration enabled for merchant A — A's device of that integration gets
tokens, merchant B's is refused (403 integration_not_enabled) within a second; after a rollback A's is refused
within a second; after promotion B's works. device-auth learns each change from the console's events (real NATS)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
from fastapi import FastAPI

from tests.support.auth_fixtures import ISSUER, RegisteredDevice
from tests.support.console_fixtures import MakePartner
from tests.support.keys import DeviceKey, assertion_form
from tests.support.portal_fixtures import MakeTenant, Tenant, bearer

WITHIN = 1.0


def code(response: httpx.Response) -> str:
    return str(response.json()["type"]).rsplit("/", 1)[-1]


async def till_of(auth: httpx.AsyncClient, admin_token: str, tenant: Tenant, integration_id: str) -> RegisteredDevice:
    key = DeviceKey()
    body = {
        "merchant_id": tenant.merchant_id,
        "store_id": tenant.store_id,
        "name": "partner till",
        "jwks": {"keys": [key.public_jwk]},
        "integration_id": integration_id,
    }
    response = await auth.post("/devices", json=body, headers=bearer(admin_token))
    assert response.status_code == 201, response.text
    assert response.json()["integration_id"] == integration_id
    return RegisteredDevice(response.json()["id"], tenant.merchant_id, tenant.store_id, key)


async def token_status(auth: httpx.AsyncClient, device: RegisteredDevice) -> tuple[int, str]:
    response = await auth.post("/oauth/token", data=assertion_form(device.key.assertion(device.id, ISSUER)))
    return response.status_code, str(response.json().get("error", ""))


async def becomes(auth: httpx.AsyncClient, device: RegisteredDevice, wanted: int) -> float:
    """Seconds until the device's token request answers `wanted` (fails after WITHIN)."""
    started = time.monotonic()
    while True:
        got, error = await token_status(auth, device)
        if got == wanted:
            return time.monotonic() - started
        assert time.monotonic() - started < WITHIN, f"still {got} {error} after {WITHIN} s"
        await asyncio.sleep(0.02)


async def test_a_pilot_then_a_rollback_then_a_promotion(
    auth: httpx.AsyncClient,
    console: httpx.AsyncClient,
    console_app: FastAPI,
    make_partner: MakePartner,
    make_tenant: MakeTenant,
    admin_token: str,
) -> None:
    partner = await make_partner()
    integration = (
        await console.post("/integrations", json={"name": "Acme Till", "version": "5.0"}, headers=partner.headers)
    ).json()
    a, b = await make_tenant(), await make_tenant()
    till_a = await till_of(auth, admin_token, a, integration["id"])
    till_b = await till_of(auth, admin_token, b, integration["id"])
    # Not rolled out anywhere: refused at both merchants; devices without an integration are not concerned.
    assert await token_status(auth, till_a) == (403, "integration_not_enabled")
    assert await token_status(auth, till_b) == (403, "integration_not_enabled")
    assert (await auth.post("/oauth/token", data=a.extra["device"].form())).status_code == 200

    admin = bearer(admin_token)
    started = await console.post(
        "/rollouts",
        json={"integration_id": integration["id"], "merchant_id": a.merchant_id, "pilot_days": 5},
        headers=admin,
    )
    assert started.status_code == 201, started.text
    rollout: dict[str, Any] = started.json()
    assert (rollout["status"], rollout["version"]) == ("pilot", 1)
    seconds = {"pilot": await becomes(auth, till_a, 200)}
    assert await token_status(auth, till_b) == (403, "integration_not_enabled")
    twice = await console.post(
        "/rollouts", json={"integration_id": integration["id"], "merchant_id": b.merchant_id}, headers=admin
    )
    assert (twice.status_code, code(twice)) == (409, "rollout_active")
    early = await console.post(f"/rollouts/{rollout['id']}/promote", headers=admin)
    assert (early.status_code, code(early)) == (409, "pilot_not_over")
    assert (await console.post(f"/rollouts/{rollout['id']}/promote", headers=partner.headers)).status_code == 403
    assert (await console.get(f"/rollouts/{rollout['id']}", headers=partner.headers)).status_code == 200

    rolled_back = await console.post(f"/rollouts/{rollout['id']}/rollback", headers=admin)
    assert rolled_back.status_code == 200 and rolled_back.json()["status"] == "rolled_back"
    seconds["rollback"] = await becomes(auth, till_a, 403)

    # Piloted again, and promoted once the window is over: every merchant's device of the integration gets tokens.
    again = (
        await console.post(
            "/rollouts",
            json={"integration_id": integration["id"], "merchant_id": a.merchant_id, "pilot_days": 1},
            headers=admin,
        )
    ).json()
    await becomes(auth, till_a, 200)
    console_app.state.business_clock.offset = 86_400 + 60
    try:
        promoted = await console.post(f"/rollouts/{again['id']}/promote", headers=admin)
    finally:
        console_app.state.business_clock.offset = 0.0
    assert promoted.status_code == 200 and promoted.json()["status"] == "live", promoted.text
    seconds["promote"] = await becomes(auth, till_b, 200)
    print(f"rollout changes reached device-auth in: {seconds}")
    assert max(seconds.values()) < WITHIN, seconds

    log = (await console.get("/audit", params={"limit": 200, "verify": "true"}, headers=admin)).json()
    ours = [e["action"] for e in log["items"] if e["subject"] in (rollout["id"], again["id"])]
    if log["next_after"] is not None:  # older entries fill the first page: read on
        after = log["next_after"]
        while after is not None:
            page = (await console.get("/audit", params={"after": after, "limit": 200}, headers=admin)).json()
            ours += [e["action"] for e in page["items"] if e["subject"] in (rollout["id"], again["id"])]
            after = page["next_after"]
    assert ours == ["rollout.started", "rollout.rolled_back", "rollout.started", "rollout.promoted"]
    assert log["verification"]["intact"] is True
