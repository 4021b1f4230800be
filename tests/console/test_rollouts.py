"""Rollouts (issue 15, "Done when"): an integration enabled for merchant A — A's device of that integration gets
tokens, merchant B's is refused (403 integration_not_enabled) within a second; after a rollback A's is refused
within a second; after promotion B's works. device-auth learns each change from the console's events (real NATS)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx
from fastapi import FastAPI

from tests.portal.helpers import bill, pay, ring_up, webhook
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


async def card_sales(portal: httpx.AsyncClient, tenant: Tenant, outcomes: list[str]) -> list[dict[str, Any]]:
    """One card sale per outcome, answered by the gateway's webhook (`payment.succeeded` / `payment.failed`)."""
    paid = []
    for outcome in outcomes:
        order = await ring_up(portal, tenant)
        billed = await bill(portal, tenant, order["id"])
        payment = (await pay(portal, tenant, billed["id"], billed["total_amount"])).json()
        answer = await webhook(portal, f"evt_{uuid.uuid4().hex}", payment["pgw_reference"], payment["amount"], outcome)
        assert answer.status_code == 200, answer.text
        paid.append(payment)
    return paid


async def health_of(
    console: httpx.AsyncClient, rollout_id: str, headers: dict[str, str], seen: Callable[[dict[str, Any]], bool]
) -> Any:
    """The pilot's health once the projector has seen what `seen` expects (events arrive within a second)."""
    started = time.monotonic()
    while True:
        response = await console.get(f"/rollouts/{rollout_id}/health", headers=headers)
        assert response.status_code == 200, response.text
        body = response.json()
        if seen(body) or time.monotonic() - started > 5:
            return body
        await asyncio.sleep(0.05)


async def test_a_pilots_health_comes_from_its_merchants_payment_events_and_gates_promotion(
    console: httpx.AsyncClient,
    console_app: FastAPI,
    portal: httpx.AsyncClient,
    make_partner: MakePartner,
    make_tenant: MakeTenant,
    admin_token: str,
) -> None:
    partner, stranger = await make_partner(), await make_partner()
    integration = (
        await console.post("/integrations", json={"name": "Watched Till", "version": "1.0"}, headers=partner.headers)
    ).json()
    pilot, elsewhere = await make_tenant(), await make_tenant()
    admin = bearer(admin_token)
    rollout = (
        await console.post(
            "/rollouts",
            json={"integration_id": integration["id"], "merchant_id": pilot.merchant_id, "pilot_days": 1},
            headers=admin,
        )
    ).json()
    # At the pilot merchant: two card payments confirmed, one declined, and a webhook with another amount.
    paid = await card_sales(portal, pilot, ["payment.succeeded", "payment.succeeded", "payment.failed"])
    order = await ring_up(portal, pilot)
    billed = await bill(portal, pilot, order["id"])
    odd = (await pay(portal, pilot, billed["id"], billed["total_amount"])).json()
    mismatch = await webhook(portal, f"evt_{uuid.uuid4().hex}", odd["pgw_reference"], odd["amount"] + 1)
    assert mismatch.status_code == 422
    await pay(portal, pilot, billed["id"], 1, "cash")  # cash is never the gateway's: not counted
    await card_sales(portal, elsewhere, ["payment.failed"] * 3)  # another merchant's failures: not this pilot's

    health = await health_of(
        console,
        rollout["id"],
        admin,
        lambda h: h["counts"]["answered"] == 3 and h["metrics"]["webhook_mismatches"]["value"] == 1,
    )
    metrics = health["metrics"]
    assert metrics["payments"] == {"value": 4, "min": 2, "ok": True}
    assert metrics["payment_failure_rate"]["value"] == round(1 / 3, 4) and not metrics["payment_failure_rate"]["ok"]
    assert metrics["webhook_mismatches"] == {"value": 1, "max": 0, "ok": False}
    assert metrics["error_rate"] == {"value": 0.0, "max": 0.01, "ok": True}  # the odd one is pending, not stuck yet
    assert metrics["latency_p95_ms"]["ok"] and metrics["latency_p95_ms"]["value"] >= 0
    assert health["healthy"] is False and health["pilot_over"] is False
    assert health["counts"] == {"payments": 4, "answered": 3, "failed": 1, "pending": 1}
    assert paid[0]["merchant_id"] == health["merchant_id"] == pilot.merchant_id

    # Its partner follows it; another partner does not see it.
    assert (await console.get(f"/rollouts/{rollout['id']}/health", headers=partner.headers)).status_code == 200
    assert (await console.get(f"/rollouts/{rollout['id']}/health", headers=stranger.headers)).status_code == 404

    # After the window, an unhealthy pilot is not promoted, and says which thresholds it misses.
    console_app.state.business_clock.offset = 86_400 + 60
    try:
        refused = await console.post(f"/rollouts/{rollout['id']}/promote", headers=admin)
        later = (await console.get(f"/rollouts/{rollout['id']}/health", headers=admin)).json()
    finally:
        console_app.state.business_clock.offset = 0.0
    assert (refused.status_code, code(refused)) == (409, "pilot_unhealthy")
    assert "payment_failure_rate" in refused.json()["detail"] and "webhook_mismatches" in refused.json()["detail"]
    # The odd payment was never answered: now long past pilot_stuck_seconds, it is an error.
    assert later["pilot_over"] is True and later["metrics"]["error_rate"]["value"] == 0.25
    assert (await console.get(f"/rollouts/{rollout['id']}", headers=admin)).json()["status"] == "pilot"


async def test_a_pilot_then_a_rollback_then_a_promotion(
    auth: httpx.AsyncClient,
    console: httpx.AsyncClient,
    portal: httpx.AsyncClient,
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
    await card_sales(portal, a, ["payment.succeeded", "payment.succeeded"])  # a healthy pilot
    healthy = await health_of(console, again["id"], admin, lambda h: h["counts"]["answered"] == 2)
    assert healthy["healthy"] is True, healthy
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
