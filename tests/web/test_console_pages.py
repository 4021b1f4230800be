"""Issue 17: the console's pages in a real browser — an operator signs in through device-auth, opens a
configuration change request from the reviewers' queue, approves it (the portal applies it: one approval is enough
in this environment), and finds every step in the audit log, its chain intact. Merchant staff get a 403 page."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, expect

from tests.cli.test_terminal import admin
from tests.support.processes import ServiceProcess
from tests.web.test_dashboard import PASSWORD, browser, sign_in  # noqa: F401 (the browser fixture)


@pytest.fixture(scope="module")
def platform(service_env: dict[str, str]) -> Iterator[dict[str, ServiceProcess]]:
    auth = ServiceProcess("device-auth", service_env)
    portal = ServiceProcess("portal", service_env)
    console = ServiceProcess("console", service_env)
    for proc in (auth, portal, console):
        proc.env.update(
            {"SMARTPOS_AUTH_ISSUER": auth.url, "SMARTPOS_PGW_MODE": "mock", "PORTAL_PORT": str(portal.port)}
        )
    auth.env["AUTH_WEB_CLIENTS"] = json.dumps({"smartpos-console": [f"{console.url}/console/callback"]})
    portal.env["PORTAL_CHANGE_APPROVALS"] = "1"
    console.env.update({"CONSOLE_PUBLIC_URL": console.url, "CONSOLE_PORTAL_URL": portal.url})
    try:
        for proc in (auth, portal, console):
            proc.start()
        yield {"auth": auth, "portal": portal, "console": console}
    finally:
        for proc in (console, portal, auth):
            proc.stop()


def created(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


def test_an_operator_approves_a_change_request_and_finds_it_in_the_audit_log(
    credentials: Path,
    platform: dict[str, ServiceProcess],
    browser: Browser,  # noqa: F811 (the fixture)
) -> None:
    auth, portal, console = (platform[k].url for k in ("auth", "portal", "console"))
    author = admin(auth, credentials)
    merchant = created(httpx.post(f"{portal}/merchants", json={"name": "Kissa", "currency": "JPY"}, headers=author))
    operator = created(httpx.post(f"{auth}/users", json={"email": "ops@smartpos.example", "password": PASSWORD,
                                                         "role": "admin"}, headers=author))  # fmt: skip
    staff = "staff@kissa-console.example"
    created(httpx.post(f"{auth}/users", json={"email": staff, "password": PASSWORD, "role": "merchant",
                                              "merchant_id": merchant["id"]}, headers=author))  # fmt: skip
    live = httpx.get(f"{portal}/config", params={"merchant_id": merchant["id"]}, headers=author).json()
    change = created(httpx.post(f"{portal}/change-requests", json={"merchant_id": merchant["id"], "bundle": {
        "document": {**live["document"], "receipt_text": "Thank you!"}}}, headers=author))  # fmt: skip

    context = browser.new_context()
    page = context.new_page()
    path = f"/console/change-requests/{change['id']}"
    sign_in(page, console, path, operator["email"])
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Change request {change['id']}")
    expect(page.locator("#change-status")).to_have_text("pending_approval")
    expect(page.get_by_role("row", name="receipt_text")).to_contain_text("Thank you!")
    page.get_by_role("button", name="Approve").click()
    expect(page.locator("#notice")).to_have_text("Approved: the change is applied.")
    expect(page.locator("#change-status")).to_have_text("applied")
    assert httpx.get(f"{portal}/config", params={"merchant_id": merchant["id"]},
                     headers=author).json()["document"]["receipt_text"] == "Thank you!"  # fmt: skip

    # The audit log: the proposal, the approval (by the operator, a user) and the apply, the chain intact. The
    # console appends them from the portal's events: reload until they are there (within a second or so).
    rows = page.get_by_role("row").filter(has_text=change["id"])
    deadline = time.monotonic() + 10
    while True:
        page.goto(f"{console}/console/audit")
        if rows.count() >= 3 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    expect(page.locator("#chain")).to_contain_text("The chain is intact")
    for action in ("change_request.created", "change_request.approved", "change_request.applied"):
        expect(rows.filter(has_text=action)).to_have_count(1)
    expect(rows.filter(has_text="change_request.approved")).to_contain_text(operator["id"])
    context.close()

    # Merchant staff are not operators: the console does not take their token (role_not_served).
    staff_context = browser.new_context()
    staff_page = staff_context.new_page()
    staff_page.goto(f"{console}/console")
    staff_page.get_by_label("Email").fill(staff)
    staff_page.get_by_label("Password").fill(PASSWORD)
    staff_page.get_by_role("button", name="Sign in").click()
    expect(staff_page.get_by_role("heading", level=1)).to_have_text("Sign-in did not complete")
    expect(staff_page.get_by_role("main")).to_contain_text("this account cannot use these pages")
    staff_context.close()


def sale(portal: str, headers: dict[str, str], store_id: str, product_id: str, run: str) -> dict[str, Any]:
    """An order billed under the certification run's header (what the partner's till sends)."""
    tagged = {**headers, "SmartPOS-Certification-Run": run}
    order = created(httpx.post(f"{portal}/orders", json={"store_id": store_id, "items": [
        {"product_id": product_id, "quantity": 2}]}, headers=tagged))  # fmt: skip
    return created(httpx.post(f"{portal}/bills", json={"order_id": order["id"]}, headers=tagged))


def pay(portal: str, headers: dict[str, str], bill: dict[str, Any], amount: int, method: str, run: str) -> Any:
    tagged = {**headers, "SmartPOS-Certification-Run": run}
    return created(httpx.post(f"{portal}/payments", json={"bill_id": bill["id"], "amount": amount, "method": method},
                              headers=tagged))  # fmt: skip


def test_a_partner_engineer_follows_a_certification_run_to_certified(
    credentials: Path,
    platform: dict[str, ServiceProcess],
    browser: Browser,  # noqa: F811 (the fixture)
) -> None:
    auth, portal, console = (platform[k].url for k in ("auth", "portal", "console"))
    operator = admin(auth, credentials)
    partner = created(httpx.post(f"{auth}/clients", json={"role": "partner", "name": "Till Maker"}, headers=operator))
    as_partner = {"Authorization": "Bearer " + httpx.post(
        f"{auth}/oauth/token", data={"grant_type": "client_credentials"},
        auth=(partner["client_id"], partner["client_secret"])).json()["access_token"]}  # fmt: skip
    engineer = created(httpx.post(f"{auth}/users", json={"email": "eng@tillmaker.example", "password": PASSWORD,
                                                         "role": "partner", "partner_id": partner["client_id"]},
                                  headers=operator))  # fmt: skip
    integration = created(httpx.post(f"{console}/integrations", json={"name": "Till Maker", "version": "7"},
                                     headers=as_partner))  # fmt: skip
    run = created(httpx.post(f"{console}/certification/runs",
                             json={"integration_id": integration["id"], "checklist": "pos-payments-v1"},
                             headers=as_partner))["id"]  # fmt: skip

    # The partner's till in the sandbox (a merchant API client stands for it): card, cash, split tender, a void.
    merchant = created(httpx.post(f"{portal}/merchants", json={"name": "Sandbox Shop", "currency": "JPY"},
                                  headers=operator))  # fmt: skip
    store = created(httpx.post(f"{portal}/stores", json={"name": "Lab", "merchant_id": merchant["id"]},
                               headers=operator))  # fmt: skip
    product = created(httpx.post(f"{portal}/products", json={"name": "tea", "unit_price": 450,
                                                            "merchant_id": merchant["id"]}, headers=operator))  # fmt: skip
    client = created(httpx.post(f"{auth}/clients", json={"merchant_id": merchant["id"], "name": "till"},
                                headers=operator))  # fmt: skip
    till = {"Authorization": "Bearer " + httpx.post(f"{auth}/oauth/token", data={"grant_type": "client_credentials"},
            auth=(client["client_id"], client["client_secret"])).json()["access_token"]}  # fmt: skip
    bills = [sale(portal, till, store["id"], product["id"], run) for _ in range(4)]
    pay(portal, till, bills[0], 900, "card", run)
    pay(portal, till, bills[1], 900, "cash", run)
    pay(portal, till, bills[2], 500, "cash", run)
    pay(portal, till, bills[2], 400, "card", run)
    late = pay(portal, till, bills[3], 861, "card", run)  # ends in 61: the mock gateway answers 30 s late
    assert httpx.post(f"{portal}/payments/{late['id']}/void",
                      headers={**till, "SmartPOS-Certification-Run": run}).status_code == 200  # fmt: skip
    deadline = time.monotonic() + 15
    while {
        c["status"] for c in httpx.get(f"{console}/certification/runs/{run}", headers=as_partner).json()["cases"]
    } != {"passed"}:
        assert time.monotonic() < deadline, "the cases were not judged passed"
        time.sleep(0.2)
    assert httpx.post(f"{console}/certification/runs/{run}/complete", headers=as_partner).json()["result"] == "passed"

    context = browser.new_context()
    page = context.new_page()
    sign_in(page, console, f"/console/certification/runs/{run}", engineer["email"])
    expect(page.locator("#run-status")).to_have_text("completed: passed")
    expect(page.locator("#case-split_tender .status")).to_have_text("passed")
    expect(page.get_by_role("navigation", name="Console")).to_have_count(0)  # the operators' pages are not theirs
    page.get_by_role("button", name="Sign off").click()
    expect(page.locator("#notice")).to_have_text("Signed off.")
    expect(page.locator("#certified")).to_have_text("not yet")  # the partner alone does not certify
    expect(page.get_by_role("button", name="Sign off")).to_have_count(0)  # nor twice
    assert httpx.post(f"{console}/certification/runs/{run}/approvals", headers=operator).status_code == 200
    page.reload()
    expect(page.locator("#certified")).to_contain_text("certified 20")
    expect(page.locator("#sign-offs")).to_contain_text(f"partner {engineer['id']}")

    # Its pilot: the rollout's page shows the pilot's health against the thresholds (too few payments yet).
    rollout = created(httpx.post(f"{console}/rollouts", json={"integration_id": integration["id"],
                                                              "merchant_id": merchant["id"], "pilot_days": 1},
                                 headers=operator))  # fmt: skip
    page.goto(f"{console}/console/rollouts/{rollout['id']}")
    expect(page.locator("#rollout-status")).to_have_text("pilot")
    expect(page.locator("#metric-payments .status")).to_have_text("no")
    expect(page.locator("#health")).to_have_text("not healthy")
    context.close()
