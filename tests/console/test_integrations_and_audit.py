"""The console (issue 15, first slice): partners register their integrations, only they and platform admins see
them, merchants' and devices' tokens are refused, and every change lands in an append-only, hash-chained audit
log whose tampering `?verify=true` finds."""

from __future__ import annotations

import asyncio
from itertools import pairwise

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from tests.support.console_fixtures import MakePartner
from tests.support.portal_fixtures import Tenant, bearer


def code(response: httpx.Response) -> str:
    return str(response.json()["type"]).rsplit("/", 1)[-1]


async def test_partners_register_integrations_and_see_only_their_own(
    console: httpx.AsyncClient, make_partner: MakePartner, admin_token: str
) -> None:
    acme, other = await make_partner(), await make_partner()
    created = await console.post("/integrations", json={"name": "Acme Till", "version": "4.2.0"}, headers=acme.headers)
    assert created.status_code == 201, created.text
    integration = created.json()
    assert integration["partner_id"] == acme.client_id and integration["id"].startswith("int_")
    again = await console.post("/integrations", json={"name": "Acme Till", "version": "4.2.0"}, headers=acme.headers)
    assert (again.status_code, code(again)) == (409, "integration_exists")
    # The same name at another version is another integration.
    assert (
        await console.post("/integrations", json={"name": "Acme Till", "version": "4.3.0"}, headers=acme.headers)
    ).status_code == 201

    url = f"/integrations/{integration['id']}"
    assert (await console.get(url, headers=acme.headers)).status_code == 200
    assert (await console.get(url, headers=other.headers)).status_code == 404  # another partner's: not revealed
    assert (await console.get("/integrations", headers=other.headers)).json()["items"] == []
    mine = (await console.get("/integrations", headers=acme.headers)).json()["items"]
    assert [i["version"] for i in mine] == ["4.3.0", "4.2.0"]
    spoofed = await console.post(
        "/integrations", json={"name": "x", "version": "1", "partner_id": other.client_id}, headers=acme.headers
    )
    assert spoofed.status_code == 404  # a partner acts for itself only

    admin = bearer(admin_token)
    assert (await console.get(url, headers=admin)).status_code == 200
    by_admin = await console.post(
        "/integrations", json={"name": "Other POS", "version": "1.0", "partner_id": other.client_id}, headers=admin
    )
    assert by_admin.status_code == 201 and by_admin.json()["partner_id"] == other.client_id
    listed = (await console.get("/integrations", params={"partner_id": other.client_id}, headers=admin)).json()
    assert [i["name"] for i in listed["items"]] == ["Other POS"]


async def test_the_console_refuses_merchants_devices_and_anonymous_callers(
    console: httpx.AsyncClient, tenant: Tenant
) -> None:
    for headers in (tenant.as_merchant, tenant.as_device):
        response = await console.get("/integrations", headers=headers)
        assert (response.status_code, code(response)) == (403, "role_not_served")
    assert (await console.get("/integrations")).status_code == 401
    assert (await console.get("/audit", headers=tenant.as_merchant)).status_code == 403


async def test_every_change_is_in_the_audit_log_and_tampering_is_found(
    console: httpx.AsyncClient, console_app: FastAPI, make_partner: MakePartner, admin_token: str
) -> None:
    acme = await make_partner()
    created = [
        (
            await console.post("/integrations", json={"name": "Audit Till", "version": f"1.{n}"}, headers=acme.headers)
        ).json()
        for n in range(3)
    ]
    admin = bearer(admin_token)
    assert (await console.get("/audit", headers=acme.headers)).status_code == 403  # the log is the platform's

    async def all_entries() -> list[dict[str, object]]:
        entries, after = [], 0
        while True:
            page = (await console.get("/audit", params={"after": after, "limit": 200}, headers=admin)).json()
            entries += page["items"]
            if page["next_after"] is None:
                return entries
            after = page["next_after"]

    entries = await all_entries()
    ours = [e for e in entries if e["subject"] in {i["id"] for i in created}]
    assert [(e["action"], e["actor_role"], e["actor_id"]) for e in ours] == [
        ("integration.created", "partner", acme.client_id)
    ] * 3
    assert [e["seq"] for e in entries] == list(range(1, len(entries) + 1))  # no gap
    assert all(b["previous_hash"] == a["hash"] for a, b in pairwise(entries))
    verified = (await console.get("/audit", params={"verify": "true", "limit": 1}, headers=admin)).json()[
        "verification"
    ]
    assert verified == {"intact": True, "entries": len(entries), "broken_at": None, "problem": None}

    engine = console_app.state.engine
    target = ours[1]["seq"]
    for statement in ("UPDATE audit_log SET action = 'x' WHERE seq = :s", "DELETE FROM audit_log WHERE seq = :s"):
        with pytest.raises(DBAPIError, match="append-only"):
            async with engine.begin() as conn:
                await conn.execute(text(statement), {"s": target})
    with pytest.raises(DBAPIError, match="append-only"):
        async with engine.begin() as conn:
            await conn.execute(text("TRUNCATE audit_log"))

    # Someone who can disable the trigger rewrites an entry: verify names it.
    async with engine.begin() as conn:
        await conn.execute(text("ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only_rows"))
        await conn.execute(
            text("UPDATE audit_log SET detail = jsonb_set(detail, '{version}', '\"9.9\"') WHERE seq = :s"),
            {"s": target},
        )
        await conn.execute(text("ALTER TABLE audit_log ENABLE TRIGGER audit_log_append_only_rows"))
    try:
        broken = (await console.get("/audit", params={"verify": "true"}, headers=admin)).json()["verification"]
        assert (broken["intact"], broken["broken_at"]) == (False, target) and "hash" in broken["problem"]
    finally:  # put it back, for the tests after this one
        async with engine.begin() as conn:
            await conn.execute(text("ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only_rows"))
            await conn.execute(
                text("UPDATE audit_log SET detail = jsonb_set(detail, '{version}', '\"1.1\"') WHERE seq = :s"),
                {"s": target},
            )
            await conn.execute(text("ALTER TABLE audit_log ENABLE TRIGGER audit_log_append_only_rows"))
    assert (await console.get("/audit", params={"verify": "true"}, headers=admin)).json()["verification"]["intact"]


async def test_concurrent_changes_chain_without_a_gap_or_a_fork(
    console: httpx.AsyncClient, make_partner: MakePartner, admin_token: str
) -> None:
    acme = await make_partner()
    answers = await asyncio.gather(
        *(
            console.post("/integrations", json={"name": "Race", "version": f"0.{n}"}, headers=acme.headers)
            for n in range(12)
        )
    )
    assert [a.status_code for a in answers] == [201] * 12
    verified = (await console.get("/audit", params={"verify": "true"}, headers=bearer(admin_token))).json()
    assert verified["verification"]["intact"] is True
