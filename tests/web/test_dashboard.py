"""Issue 17: the merchant dashboard in a real browser (Playwright driving Debian's chromium, headless).

device-auth, portal (mock gateway) and smarttab run as uvicorn processes, as users run them. A merchant's staff
member signs in through device-auth's page (authorization code flow with PKCE); their store's page then shows an
order a terminal rings up within a second, without a reload, and the order completing once the gateway's webhook
settles its payment; another merchant's store, reached by editing the URL, is a 404 page; the feed resumes after
its socket drops.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.cli.test_terminal import admin
from tests.support.processes import ServiceProcess

CHROMIUM = "/usr/bin/chromium"
PASSWORD = "correct horse battery staple"
# What the machine's closed network needs (docs/fresh-machine.md): no background connections to Google's hosts.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]  # fmt: skip


@pytest.fixture(scope="module")
def platform(service_env: dict[str, str]) -> Iterator[dict[str, ServiceProcess]]:
    auth = ServiceProcess("device-auth", service_env)
    portal = ServiceProcess("portal", service_env)
    smarttab = ServiceProcess("smarttab", service_env)
    callback = f"{smarttab.url}/dashboard/callback"
    for proc in (auth, portal, smarttab):
        proc.env.update(
            {"SMARTPOS_AUTH_ISSUER": auth.url, "SMARTPOS_PGW_MODE": "mock", "PORTAL_PORT": str(portal.port)}
        )
    auth.env["AUTH_WEB_CLIENTS"] = json.dumps({"smartpos-dashboard": [callback]})
    smarttab.env.update({"SMARTTAB_PUBLIC_URL": smarttab.url, "SMARTTAB_PORTAL_URL": portal.url})
    try:
        for proc in (auth, portal, smarttab):
            proc.start()
        yield {"auth": auth, "portal": portal, "smarttab": smarttab}
    finally:
        for proc in (smarttab, portal, auth):
            proc.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: `make browser` installs Debian's chromium")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


def shop(portal: str, auth: str, headers: dict[str, str], name: str) -> dict[str, Any]:
    """A merchant with a store, a product, a till (device token) and a staff member who signs in with a password."""

    def created(response: httpx.Response) -> dict[str, Any]:
        assert response.status_code == 201, response.text
        return response.json()  # type: ignore[no-any-return]

    merchant = created(httpx.post(f"{portal}/merchants", json={"name": name, "currency": "JPY"}, headers=headers))
    store = created(httpx.post(f"{portal}/stores", json={"name": f"{name} Shibuya", "merchant_id": merchant["id"]},
                               headers=headers))  # fmt: skip
    product = created(httpx.post(f"{portal}/products", json={"name": "coffee", "unit_price": 450,
                                                            "merchant_id": merchant["id"]}, headers=headers))  # fmt: skip
    email = f"staff@{name.lower()}.example"
    created(httpx.post(f"{auth}/users", json={"email": email, "password": PASSWORD, "role": "merchant",
                                              "merchant_id": merchant["id"]}, headers=headers))  # fmt: skip
    client = created(
        httpx.post(f"{auth}/clients", json={"merchant_id": merchant["id"], "name": "till"}, headers=headers)
    )
    token = httpx.post(f"{auth}/oauth/token", data={"grant_type": "client_credentials"},
                       auth=(client["client_id"], client["client_secret"])).json()["access_token"]  # fmt: skip
    return {"merchant": merchant, "store": store, "product": product, "email": email,
            "as_merchant": {"Authorization": f"Bearer {token}"}}  # fmt: skip


def sign_in(page: Page, dashboard: str, path: str, email: str) -> None:
    page.goto(f"{dashboard}{path}")
    expect(page.get_by_role("heading", name=re.compile("Sign in"))).to_be_visible()
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{dashboard}{path}")


def ring_up(portal: str, mine: dict[str, Any]) -> dict[str, Any]:
    headers = mine["as_merchant"]
    order = httpx.post(f"{portal}/orders", json={"store_id": mine["store"]["id"],
                                                  "items": [{"product_id": mine["product"]["id"], "quantity": 2}]},
                       headers=headers).json()  # fmt: skip
    assert order["status"] == "open", order
    return order  # type: ignore[no-any-return]


def test_a_merchant_watches_an_order_arrive_and_complete_live_and_cannot_open_another_merchants_store(
    credentials: Path,
    platform: dict[str, ServiceProcess],
    browser: Browser,  # credentials first: asyncio.run
) -> None:
    auth, portal, dashboard = (platform[k].url for k in ("auth", "portal", "smarttab"))
    headers = admin(auth, credentials)
    mine, theirs = shop(portal, auth, headers, "Kissa"), shop(portal, auth, headers, "Rival")
    store_path = f"/dashboard/stores/{mine['store']['id']}"
    shift = httpx.post(f"{portal}/shifts", json={"store_id": mine["store"]["id"], "opening_float": 10_000},
                       headers=mine["as_merchant"])  # fmt: skip
    assert shift.status_code == 201, shift.text

    context = browser.new_context()
    page = context.new_page()
    sign_in(page, dashboard, store_path, mine["email"])
    expect(page.get_by_role("heading", level=1)).to_have_text("Kissa Shibuya")
    expect(page.locator("#feed-state")).to_have_text("Live")
    # The store's books, read from the portal with the person's token: the open shift, the (empty) Z chain.
    expect(page.locator("#shifts tbody tr")).to_have_count(1)
    expect(page.locator("#shifts tbody")).to_contain_text("open")
    expect(page.locator("#z-chain")).to_have_text("The chain of 0 sealed reports verifies.")

    started = time.monotonic()
    order = ring_up(portal, mine)
    row = page.locator(f"#order-{order['id']}")
    expect(row).to_be_visible(timeout=1_000)  # within a second, without a reload
    seen_after = time.monotonic() - started
    expect(row.locator(".status")).to_have_text("open")

    billed = httpx.post(f"{portal}/bills", json={"order_id": order["id"]}, headers=mine["as_merchant"]).json()
    paid = httpx.post(f"{portal}/payments", json={"bill_id": billed["id"], "amount": billed["total_amount"],
                                                  "method": "card"}, headers=mine["as_merchant"])  # fmt: skip
    assert paid.status_code == 201, paid.text
    expect(row.locator(".status")).to_have_text("completed", timeout=5_000)  # after the mock gateway's webhook
    print(f"order on the page {seen_after * 1000:.0f} ms after POST /orders was sent")

    # The feed resumes after its socket drops: an order rung up while disconnected still appears.
    context.set_offline(True)
    missed = ring_up(portal, mine)
    context.set_offline(False)
    expect(page.locator(f"#order-{missed['id']}")).to_be_visible(timeout=15_000)

    # Another merchant's store, by editing the URL: the same 404 as no store at all.
    response = page.goto(f"{dashboard}/dashboard/stores/{theirs['store']['id']}")
    assert response is not None and response.status == 404
    expect(page.get_by_role("heading", level=1)).to_have_text("Store not found")
    assert theirs["store"]["name"] not in page.content()
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]

    # Signing out ends the session: the store's page asks to sign in again.
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Signed out")
    page.goto(f"{dashboard}{store_path}")
    expect(page.get_by_role("heading", name=re.compile("Sign in"))).to_be_visible()
    context.close()


def test_pages_need_a_session_and_a_sign_in_starts_only_from_this_server(
    platform: dict[str, ServiceProcess],
) -> None:
    dashboard = platform["smarttab"].url
    anonymous = httpx.get(f"{dashboard}/dashboard/stores/sto_01KAAAAAAAAAAAAAAAAAAAAAAA", follow_redirects=False)
    assert anonymous.status_code == 303 and anonymous.headers["location"].startswith("/dashboard/login")
    login = httpx.get(f"{dashboard}/dashboard/login", params={"next": "https://evil.example/"}, follow_redirects=False)
    assert login.status_code == 303 and login.headers["location"].startswith(f"{platform['auth'].url}/authorize?")
    forged = httpx.get(f"{dashboard}/dashboard/callback", params={"code": "x", "state": "never-issued"})
    assert forged.status_code == 400  # a state this server never issued: no session
