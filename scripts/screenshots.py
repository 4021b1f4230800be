"""`make screenshots`: every web page at desktop and phone width, into docs/screenshots/ (linked from the README).

Runs the platform on databases of its own (`smartpos_shots_*`, created, migrated and dropped again): device-auth,
a portal with the mock gateway, smarttab and the console as uvicorn processes on free ports, with their projectors
on consumers of their own from now on. It makes a small world through the public APIs (a shop with orders, its
staff, an operator, a partner engineer with a passed certification run, a pending change request), then signs in
as each person in Debian's chromium (Playwright) and photographs their pages.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
from playwright.sync_api import Page, sync_playwright

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import Server  # noqa: E402
from bench.run import drop_database, recreate_database  # noqa: E402
from smartpos_cli import migrate  # noqa: E402

OUT = ROOT / "docs" / "screenshots"
PASSWORD = "correct horse battery staple"
SIZES = {"desktop": (1280, 800), "phone": (390, 844)}
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]  # fmt: skip
DATABASES = {"portal": "PORTAL_DATABASE_URL", "smarttab": "SMARTTAB_DATABASE_URL", "device-auth": "AUTH_DATABASE_URL",
             "console": "CONSOLE_DATABASE_URL"}  # fmt: skip


def database_url(service: str) -> str:
    return f"postgresql+asyncpg://postgres@127.0.0.1:5432/smartpos_shots_{service.replace('-', '_')}"


def created(response: httpx.Response) -> dict[str, Any]:
    if response.status_code != 201:
        raise RuntimeError(f"{response.request.method} {response.request.url}: {response.status_code} {response.text}")
    return response.json()  # type: ignore[no-any-return]


def token(auth: str, client: dict[str, Any]) -> dict[str, str]:
    answer = httpx.post(f"{auth}/oauth/token", data={"grant_type": "client_credentials"},
                        auth=(client["client_id"], client["client_secret"]))  # fmt: skip
    return {"Authorization": f"Bearer {answer.json()['access_token']}"}


def world(auth: str, portal: str, console: str, admin: dict[str, str]) -> dict[str, Any]:
    """A shop with a morning's orders, its staff member, an operator, a partner engineer with a passed run."""
    merchant = created(
        httpx.post(f"{portal}/merchants", json={"name": "Kissa Ginza", "currency": "JPY"}, headers=admin)
    )
    store = created(httpx.post(f"{portal}/stores", json={"name": "Ginza", "merchant_id": merchant["id"],
                                                        "timezone": "Asia/Tokyo"}, headers=admin))  # fmt: skip
    menu = (("coffee", 450, "CF-1"), ("croissant", 380, "CR-1"), ("matcha", 560, "MT-1"))
    products = [created(httpx.post(f"{portal}/products", json={"name": name, "unit_price": price, "sku": sku,
                                                              "merchant_id": merchant["id"]}, headers=admin))
                for name, price, sku in menu]  # fmt: skip
    till = token(auth, created(httpx.post(f"{auth}/clients", json={"merchant_id": merchant["id"], "name": "till"},
                                          headers=admin)))  # fmt: skip
    users = {}
    for role, extra in (("merchant", {"merchant_id": merchant["id"]}), ("admin", {})):
        users[role] = created(httpx.post(f"{auth}/users", json={"email": f"{role}@kissa.example", "password": PASSWORD,
                                                                 "role": role, **extra}, headers=admin))  # fmt: skip
    partner = created(httpx.post(f"{auth}/clients", json={"role": "partner", "name": "Till Maker"}, headers=admin))
    as_partner = token(auth, partner)
    users["partner"] = created(httpx.post(f"{auth}/users", json={
        "email": "engineer@tillmaker.example", "password": PASSWORD, "role": "partner",
        "partner_id": partner["client_id"]}, headers=admin))  # fmt: skip
    integration = created(httpx.post(f"{console}/integrations", json={"name": "Till Maker POS", "version": "7.0"},
                                     headers=as_partner))  # fmt: skip
    run = created(httpx.post(f"{console}/certification/runs", headers=as_partner,
                             json={"integration_id": integration["id"], "checklist": "pos-payments-v1"}))  # fmt: skip
    tagged = {**till, "SmartPOS-Certification-Run": run["id"]}
    # A business day under a test clock, so it can be sealed now: the shift, the sales, then the day's Z report.
    frozen = datetime.now(UTC).replace(microsecond=0)
    at = {"merchant_id": merchant["id"], "frozen_time": frozen.isoformat()}
    clock = created(httpx.post(f"{portal}/test-clocks", json=at, headers=admin))
    shift = created(httpx.post(f"{portal}/shifts", json={"store_id": store["id"], "opening_float": 10_000},
                               headers=till))  # fmt: skip

    def sale(quantities: tuple[int, ...], tenders: list[tuple[int | None, str]], headers: dict[str, str]) -> None:
        items = [{"product_id": p["id"], "quantity": q} for p, q in zip(products, quantities, strict=False) if q]
        order = created(httpx.post(f"{portal}/orders", json={"store_id": store["id"], "items": items}, headers=headers))
        if not tenders:
            return
        billed = created(httpx.post(f"{portal}/bills", json={"order_id": order["id"]}, headers=headers))
        remaining = billed["total_amount"]
        for amount, method in tenders:
            body = {"bill_id": billed["id"], "amount": amount or remaining, "method": method}
            remaining -= body["amount"]
            paid = created(httpx.post(f"{portal}/payments", json=body, headers=headers))
            if paid["amount"] % 100 == 61:
                httpx.post(f"{portal}/payments/{paid['id']}/void", headers=headers)

    sale((2, 1), [(None, "card")], tagged)
    sale((1,), [(None, "cash")], tagged)
    sale((1, 2), [(500, "cash"), (None, "card")], tagged)
    sale((3, 3), [(2_361, "card")], tagged)  # ends in 61: answered late, voided first
    sale((0, 0, 2), [], till)  # still open: on the dashboard as it is rung up
    expected = httpx.get(f"{portal}/shifts/{shift['id']}", headers=till).json()["expected_cash"]
    httpx.post(f"{portal}/shifts/{shift['id']}/close", json={"counted_cash": expected - 10}, headers=till)
    business_date = (frozen.astimezone(ZoneInfo("Asia/Tokyo")) - timedelta(hours=4)).date()
    httpx.post(f"{portal}/test-clocks/{clock['id']}/advance", json={"to": (frozen + timedelta(days=1)).isoformat()},
               headers=admin)  # fmt: skip
    created(httpx.post(f"{portal}/stores/{store['id']}/closeouts", json={"business_date": business_date.isoformat()},
                       headers=admin))  # fmt: skip
    deadline = time.monotonic() + 20
    while {c["status"] for c in httpx.get(f"{console}/certification/runs/{run['id']}", headers=as_partner)
           .json()["cases"]} != {"passed"}:  # fmt: skip
        if time.monotonic() > deadline:
            raise RuntimeError("the certification cases were not judged passed")
        time.sleep(0.3)
    httpx.post(f"{console}/certification/runs/{run['id']}/complete", headers=as_partner)
    live = httpx.get(f"{portal}/config", params={"merchant_id": merchant["id"]}, headers=admin).json()["document"]
    change = created(httpx.post(f"{portal}/change-requests", json={"merchant_id": merchant["id"], "bundle": {
        "document": {**live, "tip_options": [5, 10], "receipt_text": "Thank you — see you tomorrow!",
                     "catalog": [{**i, "unit_price": i["unit_price"] + 20} for i in live["catalog"]]}}},
        headers=admin))  # fmt: skip
    rollout = created(httpx.post(f"{console}/rollouts", json={"integration_id": integration["id"],
                                                              "merchant_id": merchant["id"], "pilot_days": 5},
                                 headers=admin))  # fmt: skip
    return {"store": store, "users": users, "run": run, "change": change, "rollout": rollout}


def sign_in(page: Page, url: str, email: str) -> None:
    page.goto(url)
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(url)


def photograph(dashboard: str, console: str, auth_url: str, made: dict[str, Any]) -> list[Path]:
    users = made["users"]
    pages = [
        ("sign-in", None, f"{dashboard}/dashboard", None),
        ("dashboard-stores", users["merchant"], f"{dashboard}/dashboard", None),
        ("dashboard-store", users["merchant"], f"{dashboard}/dashboard/stores/{made['store']['id']}", "#orders"),
        ("console-change-requests", users["admin"], f"{console}/console/change-requests", None),
        ("console-change-request", users["admin"], f"{console}/console/change-requests/{made['change']['id']}", None),
        ("console-audit", users["admin"], f"{console}/console/audit", None),
        ("console-certification-run", users["partner"], f"{console}/console/certification/runs/{made['run']['id']}",
         None),
        ("console-rollout", users["partner"], f"{console}/console/rollouts/{made['rollout']['id']}", None),
    ]  # fmt: skip
    OUT.mkdir(parents=True, exist_ok=True)
    written = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=CHROMIUM_ARGS)
        for size, (width, height) in SIZES.items():
            sessions: dict[str, Any] = {}
            for name, user, url, wait_for in pages:
                key = f"{user['id'] if user else 'nobody'}:{url.split('/')[2]}"
                if key not in sessions:
                    context = browser.new_context(viewport={"width": width, "height": height})
                    sessions[key] = context.new_page()
                    if user is not None:
                        sign_in(sessions[key], url, user["email"])
                page = sessions[key]
                page.goto(url)
                if wait_for:
                    page.wait_for_selector(wait_for)
                    page.wait_for_timeout(500)  # the live feed says "Live"
                path = OUT / f"{name}-{size}.png"
                page.screenshot(path=str(path), full_page=True)
                written.append(path)
        browser.close()
    return written


async def main() -> int:
    urls = {service: database_url(service) for service in DATABASES}
    for service, url in urls.items():
        await recreate_database(url)
        await asyncio.to_thread(migrate.run, migrate.SERVICES[service], "upgrade", "head", database_url=url)
    env = {var: urls[service] for service, var in DATABASES.items()}
    servers = {service: Server(service, env) for service in ("device-auth", "portal", "smarttab", "console")}
    auth, portal, dashboard, console = (servers[s].url for s in ("device-auth", "portal", "smarttab", "console"))
    own = uuid.uuid4().hex[:8]
    for server in servers.values():
        server.env.update({
            "SMARTPOS_ENV": "staging", "SMARTPOS_AUTH_ISSUER": auth, "SMARTPOS_PGW_MODE": "mock",
            "SMARTPOS_PGW_WEBHOOK_URL": f"{portal}/webhooks/pgw",
            "AUTH_WEB_CLIENTS": json.dumps({"smartpos-dashboard": [f"{dashboard}/dashboard/callback"],
                                            "smartpos-console": [f"{console}/console/callback"]}),
            "SMARTTAB_PUBLIC_URL": dashboard, "SMARTTAB_PORTAL_URL": portal, "CONSOLE_PUBLIC_URL": console,
            "CONSOLE_PORTAL_URL": portal,
            **{f"{prefix}_DURABLE": f"shots-{own}-{prefix.lower()}" for prefix in (
                "SMARTTAB_PROJECTOR", "AUTH_STORE_PROJECTOR", "CONSOLE_EVIDENCE_PROJECTOR", "CONSOLE_PILOT_PROJECTOR",
                "CONSOLE_AUDIT_PROJECTOR")},
            **{f"{prefix}_START": "new" for prefix in (
                "SMARTTAB_PROJECTOR", "AUTH_STORE_PROJECTOR", "CONSOLE_EVIDENCE_PROJECTOR", "CONSOLE_PILOT_PROJECTOR",
                "CONSOLE_AUDIT_PROJECTOR")},
            **{f"{prefix}_INACTIVE_SECONDS": "60" for prefix in (
                "SMARTTAB_PROJECTOR", "AUTH_STORE_PROJECTOR", "CONSOLE_EVIDENCE_PROJECTOR", "CONSOLE_PILOT_PROJECTOR",
                "CONSOLE_AUDIT_PROJECTOR")},
        })  # fmt: skip
    try:
        for server in servers.values():
            server.start()
        from device_auth.clients.bootstrap import bootstrap
        from device_auth.settings import AuthSettings

        admin = token(auth, await bootstrap(AuthSettings(database_url=urls["device-auth"])))
        made = world(auth, portal, console, admin)
        await asyncio.sleep(1.0)  # the projections catch up (store names, evidence, audit entries)
        written = await asyncio.to_thread(photograph, dashboard, console, auth, made)
        for path in written:
            print(f"[screenshots] {path.relative_to(ROOT)}")
    finally:
        for server in servers.values():
            server.stop()
        for url in urls.values():
            await drop_database(url)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
