"""Issue 16's "done when": configuration moves from a seeded sandbox to production as a reviewed change request.

Two portal processes on two databases stand for staging and production (one device-auth signs everyone in).
`smartpos config export` writes the seeded merchant's configuration; production gets it as a change request, two
admins other than the author approve it, and the scheduler's step applies it at the store's off-peak local time
(an injected clock) — production's configuration then has the bundle's checksum, and revert restores the previous
one exactly. The author cannot approve; a concurrent edit in production makes the change fail with nothing
applied; a bundle that violates the schema is refused with the offending fields.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import httpx
import pytest

from portal.config import changes
from smartpos_shared.db import create_engine, make_sessionmaker
from tests.cli.test_terminal import admin, smartpos
from tests.support.databases import TestDatabase, drop, migrate_to_head, recreate
from tests.support.databases import test_database as database_for
from tests.support.environment import redis_url
from tests.support.processes import ROOT, ServiceProcess


@pytest.fixture(scope="module")
def environments(service_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    staging, production = database_for("portal", "_staging"), database_for("portal", "_production_cfg")
    seed_auth = database_for("device-auth", "_staging_cfg")
    made: list[TestDatabase] = [staging, production, seed_auth]
    for db in made:
        asyncio.run(recreate(db))
        migrate_to_head(db)
    seeded = subprocess.run(
        [sys.executable, "-m", "smartpos_cli", "seed", "--seed", "7", "--merchants", "1", "--stores-per-merchant", "1",
         "--days", "2", "--orders-per-day", "5", "--devices-dir", str(tmp_path_factory.mktemp("devices"))],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
        env={**os.environ, staging.env_var: staging.url, seed_auth.env_var: seed_auth.url, "REDIS_URL": redis_url(),
             "SMARTPOS_ENV": "staging"},
    )  # fmt: skip
    assert seeded.returncode == 0, seeded.stdout + seeded.stderr
    auth = ServiceProcess("device-auth", service_env)
    portals = {
        "staging": ServiceProcess("portal", {**service_env, staging.env_var: staging.url, "SMARTPOS_ENV": "staging"}),
        "production": ServiceProcess("portal", {**service_env, production.env_var: production.url}),
    }
    for proc in (auth, *portals.values()):
        proc.env.update({"SMARTPOS_AUTH_ISSUER": auth.url, "SMARTPOS_PGW_MODE": "mock"})
    portals["staging"].env["PORTAL_CHANGE_APPROVALS"] = "1"  # the sandbox needs one reviewer; production two
    try:
        auth.start()
        for proc in portals.values():
            proc.start()
        yield {"auth": auth, "staging": portals["staging"], "production": portals["production"],
               "production_db": production, "staging_db": staging}  # fmt: skip
    finally:
        for proc in (*portals.values(), auth):
            proc.stop()
        asyncio.run(drop(*made))


def new_admin(auth: str, database: TestDatabase) -> dict[str, str]:
    """Another operator, made as operators make one: `smartpos admin create-operator` against device-auth's DB."""
    made = subprocess.run(
        [sys.executable, "-m", "smartpos_cli", "admin", "create-operator", "--name", "reviewer"],
        cwd=ROOT, capture_output=True, text=True, timeout=60, env={**os.environ, database.env_var: database.url},
    )  # fmt: skip
    assert made.returncode == 0, made.stdout + made.stderr
    created = json.loads(made.stdout)
    token = httpx.post(
        f"{auth}/oauth/token",
        data={"grant_type": "client_credentials"},
        auth=(created["client_id"], created["client_secret"]),
    ).json()["access_token"]
    return {"Authorization": f"Bearer {token}"}


def live(portal: str, merchant_id: str, headers: dict[str, str]) -> dict[str, Any]:
    response = httpx.get(f"{portal}/config", params={"merchant_id": merchant_id}, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def propose(portal: str, headers: dict[str, str], body: dict[str, Any]) -> httpx.Response:
    return httpx.post(f"{portal}/change-requests", json=body, headers=headers)


def approve(portal: str, change_id: str, headers: dict[str, str]) -> httpx.Response:
    return httpx.post(f"{portal}/change-requests/{change_id}/approvals", headers=headers)


def code(response: httpx.Response) -> str:
    return str(response.json()["type"]).rsplit("/", 1)[-1]


async def scheduler_step(db: TestDatabase, now: datetime) -> list[dict[str, Any]]:
    """What the scheduler process does each pass for configuration, at an injected time."""
    engine = create_engine(db.url, pool_size=1, max_overflow=0)
    try:
        return await changes.apply_due(make_sessionmaker(engine), now)
    finally:
        await engine.dispose()


async def first_merchant(db: TestDatabase) -> tuple[str, str]:
    conn = await asyncpg.connect(db.url.replace("+asyncpg", ""))
    try:
        row = await conn.fetchrow("SELECT id, currency FROM merchants ORDER BY id LIMIT 1")
        assert row is not None
        return row["id"], row["currency"]
    finally:
        await conn.close()


def test_a_seeded_sandboxs_configuration_reaches_production_reviewed_scheduled_and_revertible(
    environments: dict[str, Any], credentials: Path, tmp_path: Path, databases: dict[str, TestDatabase]
) -> None:
    auth, staging, production = (environments[k].url for k in ("auth", "staging", "production"))
    author = admin(auth, credentials)
    reviewers = [new_admin(auth, databases["device-auth"]) for _ in range(2)]
    # An admin token cannot mint admins (one could then approve its own change).
    minted = httpx.post(f"{auth}/clients", json={"role": "admin", "name": "me again"}, headers=author)
    assert minted.status_code == 422
    seeded, currency = asyncio.run(first_merchant(environments["staging_db"]))

    # Staging: the sandbox's settings changed through its own (one-reviewer) change request, applied at once.
    sandbox = live(staging, seeded, author)["document"]
    assert len(sandbox["catalog"]) >= 10 and sandbox["tip_options"] == []
    tuned = {**sandbox, "tip_options": [5, 10, 15], "receipt_text": "Thank you! Kissa",
             "tax_rates": [{"code": "STD", "name": "Consumption tax", "rate_basis_points": 1000}],
             "payment_methods": ["card", "cash", "qr"],
             "offline": {"max_payment_amount": 5_000, "max_outstanding_amount": 20_000, "max_age_hours": 12}}  # fmt: skip
    staged = propose(staging, author, {"merchant_id": seeded, "bundle": {"document": tuned}})
    assert staged.status_code == 201, staged.text
    assert approve(staging, staged.json()["id"], reviewers[0]).json()["status"] == "applied"

    bundle_file = tmp_path / "bundle.json"
    exported = smartpos("config", "export", "--merchant-id", seeded, "--out", str(bundle_file), "--portal-url", staging,
                        "--auth-url", auth, "--credentials", str(credentials))  # fmt: skip
    assert exported.returncode == 0, exported.stdout + exported.stderr
    bundle = json.loads(bundle_file.read_text())
    assert bundle["exported_from"]["checksum"] == live(staging, seeded, author)["checksum"]

    # Production: the same merchant, set up by hand with a store in Tokyo and one product of its own.
    merchant = httpx.post(f"{production}/merchants", json={"name": "Kissa", "currency": currency}, headers=author)
    assert merchant.status_code == 201, merchant.text
    prod = merchant.json()["id"]
    store = httpx.post(f"{production}/stores", json={"name": "Ginza", "merchant_id": prod, "timezone": "Asia/Tokyo"},
                       headers=author)  # fmt: skip
    assert store.status_code == 201, store.text
    own = httpx.post(f"{production}/products", json={"name": "old blend", "unit_price": 400, "sku": "OLD-1",
                                                    "merchant_id": prod}, headers=author)  # fmt: skip
    assert own.status_code == 201, own.text
    before = live(production, prod, author)

    proposed = propose(production, author, {"merchant_id": prod, "bundle": bundle, "scheduled_at": "off_peak"})
    assert proposed.status_code == 201, proposed.text
    change = proposed.json()
    assert (change["status"], change["approvals_required"], change["base_checksum"]) == (
        "pending_approval", 2, before["checksum"]
    )  # fmt: skip
    paths = {d["path"]: d for d in change["diff"]}
    assert paths["receipt_text"] == {"path": "receipt_text", "from": "", "to": "Thank you! Kissa"}
    assert paths["catalog[OLD-1].name"]["to"] is None  # dropped from the catalog
    apply_at = datetime.fromisoformat(change["apply_at"])
    assert apply_at.astimezone(ZoneInfo("Asia/Tokyo")).strftime("%H:%M") == "03:00"

    refused = approve(production, change["id"], author)
    assert (refused.status_code, code(refused)) == (403, "author_cannot_approve")
    assert approve(production, change["id"], reviewers[0]).json()["status"] == "pending_approval"
    twice = approve(production, change["id"], reviewers[0])
    assert (twice.status_code, code(twice)) == (409, "already_approved")
    approved = approve(production, change["id"], reviewers[1]).json()
    assert approved["status"] == "approved" and len(approved["approvals"]) == 2

    # The scheduler's step, with an injected clock: nothing before the store's off-peak time, then all of it.
    assert asyncio.run(scheduler_step(environments["production_db"], apply_at - timedelta(minutes=1))) == []
    assert live(production, prod, author)["checksum"] == before["checksum"]
    done = asyncio.run(scheduler_step(environments["production_db"], apply_at))
    assert [(d["id"], d["status"]) for d in done] == [(change["id"], "applied")]
    after = live(production, prod, author)
    assert after["checksum"] == bundle["exported_from"]["checksum"] and after["document"] == bundle["document"]
    assert after["version"] == before["version"] + 1
    old = httpx.get(f"{production}/products/{own.json()['id']}", headers=author).json()
    assert old["active"] is False  # kept (orders may name it), never sold again

    reverted = httpx.post(f"{production}/change-requests/{change['id']}/revert", headers=reviewers[0])
    assert reverted.status_code == 200 and reverted.json()["status"] == "reverted", reverted.text
    restored = live(production, prod, author)
    assert restored["checksum"] == before["checksum"] and restored["document"] == before["document"]

    # A concurrent edit in production: the change fails whole, naming what changed; nothing of it is applied.
    again = propose(production, author, {"merchant_id": prod, "bundle": bundle}).json()
    assert approve(production, again["id"], reviewers[0]).status_code == 200
    edited = httpx.patch(f"{production}/merchants/{prod}", json={"offline_max_age_hours": 6}, headers=author)
    assert edited.status_code == 200, edited.text
    failed = approve(production, again["id"], reviewers[1]).json()  # the last approval applies it at once
    assert failed["status"] == "failed"
    assert [c["path"] for c in failed["failure"]["conflicts"]] == ["offline.max_age_hours"]
    now = live(production, prod, author)["document"]
    assert now == {**before["document"], "offline": {**before["document"]["offline"], "max_age_hours": 6}}

    # A bundle that violates the schema: refused, with the offending fields.
    broken = {**bundle["document"], "tip_options": [0], "payment_methods": ["bitcoin"],
              "catalog": [*bundle["document"]["catalog"], {"sku": "X", "name": "", "unit_price": -1}]}  # fmt: skip
    invalid = propose(production, author, {"merchant_id": prod, "bundle": {"document": broken}})
    assert invalid.status_code == 422, invalid.text
    located = {".".join(str(p) for p in e["loc"]) for e in invalid.json()["errors"]}
    assert {"body.bundle.document.tip_options.0", "body.bundle.document.payment_methods.0"} <= located, located
    assert any(loc.startswith("body.bundle.document.catalog.") for loc in located), located
