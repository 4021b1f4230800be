"""Issue 16: every step of a configuration change request (proposed in the portal, approved, applied, reverted) is
in the console's append-only audit log, with who did it — from the portal's events (real NATS)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
from fastapi import FastAPI

from tests.portal.test_tenant_scoped_queries import reviewer
from tests.support.portal_fixtures import Tenant, bearer


async def entries_of(console: httpx.AsyncClient, admin: dict[str, str], subject: str, count: int) -> list[Any]:
    deadline = time.monotonic() + 5
    while True:
        found, after = [], None
        while True:
            params: dict[str, Any] = {"limit": 200, **({"after": after} if after is not None else {})}
            page = (await console.get("/audit", params=params, headers=admin)).json()
            found += [e for e in page["items"] if e["subject"] == subject]
            after = page["next_after"]
            if after is None:
                break
        if len(found) >= count or time.monotonic() > deadline:
            return found
        await asyncio.sleep(0.05)


async def test_a_change_requests_every_step_is_in_the_audit_log_with_its_actor(
    portal: httpx.AsyncClient,
    console: httpx.AsyncClient,
    auth: httpx.AsyncClient,
    auth_app: FastAPI,
    tenant: Tenant,
    admin_token: str,
) -> None:
    admin = bearer(admin_token)
    reviewers = [await reviewer(auth, auth_app), await reviewer(auth, auth_app)]
    document = (await portal.get("/config", headers=tenant.as_merchant)).json()["document"]
    change = (
        await portal.post(
            "/change-requests",
            json={"merchant_id": tenant.merchant_id, "bundle": {"document": {**document, "tip_options": [10]}}},
            headers=admin,
        )
    ).json()
    approvers = []
    for headers in reviewers:
        approvers.append((await portal.post(f"/change-requests/{change['id']}/approvals", headers=headers)).json())
    assert approvers[-1]["status"] == "applied"
    reverted = await portal.post(f"/change-requests/{change['id']}/revert", headers=admin)
    assert reverted.status_code == 200

    entries = await entries_of(console, admin, change["id"], 5)
    assert [e["action"] for e in entries] == [
        "change_request.created", "change_request.approved", "change_request.approved", "change_request.applied",
        "change_request.reverted",
    ]  # fmt: skip
    approved_by = [e["actor_id"] for e in entries if e["action"] == "change_request.approved"]
    assert approved_by == [a["principal_id"] for a in approvers[-1]["approvals"]]
    assert entries[0]["actor_id"] == change["author_id"] and entries[0]["actor_id"] not in approved_by
    assert entries[3]["detail"]["status"] == "applied" and entries[3]["detail"]["merchant_id"] == tenant.merchant_id
    verified = (await console.get("/audit", params={"verify": "true", "limit": 1}, headers=admin)).json()
    assert verified["verification"]["intact"] is True
