"""Certification runs (issue 15): a partner's terminal works against the sandbox portal with the run's header, and
the console judges each case of pos-core-v1 from the platform's own events — a gateway webhook's events count for
the run through the payment they name; what the partner does without the header never counts."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI

from console.main import build_app as build_console
from console.settings import ConsoleSettings
from tests.portal.helpers import bill, ring_up, webhook
from tests.support.apps import running
from tests.support.auth_fixtures import ISSUER
from tests.support.console_fixtures import MakePartner, Partner
from tests.support.databases import TestDatabase
from tests.support.environment import nats_url, redis_url
from tests.support.portal_fixtures import Tenant, bearer
from tests.support.processes import ROOT

HEADER = "SmartPOS-Certification-Run"


def code(response: httpx.Response) -> str:
    return str(response.json()["type"]).rsplit("/", 1)[-1]


async def run_of(console: httpx.AsyncClient, partner: Partner, run_id: str) -> dict[str, Any]:
    response = await console.get(f"/certification/runs/{run_id}", headers=partner.headers)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


async def until_passed(console: httpx.AsyncClient, partner: Partner, run_id: str, cases: set[str]) -> dict[str, Any]:
    deadline = time.monotonic() + 10
    while True:
        run = await run_of(console, partner, run_id)
        passed = {c["id"] for c in run["cases"] if c["status"] == "passed"}
        if cases <= passed or time.monotonic() > deadline:
            return run
        await asyncio.sleep(0.1)


async def a_till_session(portal: httpx.AsyncClient, tenant: Tenant, run_id: str) -> dict[str, Any]:
    """What a partner's till does under the run's header: a cash sale, a card sale (settled by the gateway's
    webhook, which carries no header), a split tender and a voided card payment. Answers the card sale's bill."""
    as_run = {**tenant.as_device, HEADER: run_id}

    async def pay(bill_id: str, amount: int, method: str) -> dict[str, Any]:
        response = await portal.post(
            "/payments", json={"bill_id": bill_id, "amount": amount, "method": method}, headers=as_run
        )
        assert response.status_code == 201, response.text
        return response.json()  # type: ignore[no-any-return]

    async def sale() -> dict[str, Any]:
        items = [{"product_id": p["id"], "quantity": 1} for p in tenant.products[:2]]
        order = (await portal.post("/orders", json={"items": items}, headers=as_run)).json()
        return (await portal.post("/bills", json={"order_id": order["id"]}, headers=as_run)).json()  # type: ignore[no-any-return]

    cash = await sale()
    await pay(cash["id"], cash["total_amount"], "cash")
    card = await sale()
    by_card = await pay(card["id"], card["total_amount"], "card")
    # The gateway's webhook carries no run: its events count through the payment it names.
    assert (
        await webhook(portal, f"evt_{uuid.uuid4().hex}", by_card["pgw_reference"], by_card["amount"])
    ).status_code == 200
    split = await sale()
    await pay(split["id"], 500, "cash")
    rest = await pay(split["id"], split["total_amount"] - 500, "card")
    await webhook(portal, f"evt_{uuid.uuid4().hex}", rest["pgw_reference"], rest["amount"])
    voided = await sale()
    pending = await pay(voided["id"], voided["total_amount"], "card")
    assert (await portal.post(f"/payments/{pending['id']}/void", headers=as_run)).status_code == 200
    return card


async def test_cases_are_judged_from_the_platforms_events(
    console: httpx.AsyncClient, portal: httpx.AsyncClient, make_partner: MakePartner, tenant: Tenant, admin_token: str
) -> None:
    partner = await make_partner()
    integration = (
        await console.post("/integrations", json={"name": "Cert Till", "version": "1.0"}, headers=partner.headers)
    ).json()
    started = await console.post(
        "/certification/runs", json={"integration_id": integration["id"]}, headers=partner.headers
    )
    assert started.status_code == 201, started.text
    run = started.json()
    assert run["status"] == "running" and {c["status"] for c in run["cases"]} == {"pending"}
    card = await a_till_session(portal, tenant, run["id"])

    judged = await until_passed(
        console, partner, run["id"], {"sale_by_cash", "sale_by_card", "split_tender", "void_before_capture"}
    )
    cases = {c["id"]: c for c in judged["cases"]}
    for case in ("sale_by_cash", "sale_by_card", "split_tender", "void_before_capture"):
        assert cases[case]["status"] == "passed", cases[case]
        assert cases[case]["evidence"] and all(e.startswith("evt_") for e in cases[case]["evidence"])
    assert cases["sale_by_card"]["detail"].startswith(f"bill {card['id']}")
    assert cases["partial_refund"]["status"] == "pending"  # nothing shown yet
    assert cases["token_renewed"]["status"] == "pending"  # the fixture signs in without the run header

    # Sales made without the header belong to no run: another run sees nothing of them.
    other = (
        await console.post("/certification/runs", json={"integration_id": integration["id"]}, headers=partner.headers)
    ).json()
    order = await ring_up(portal, tenant)
    plain = await bill(portal, tenant, order["id"])
    assert (await portal.post("/payments", json={"bill_id": plain["id"], "amount": plain["total_amount"], "method": "cash"},
                              headers=tenant.as_device)).status_code == 201  # fmt: skip
    await asyncio.sleep(0.5)
    assert {c["status"] for c in (await run_of(console, partner, other["id"]))["cases"]} == {"pending"}

    # Only the integration's partner and admins see a run.
    stranger = await make_partner()
    assert (await console.get(f"/certification/runs/{run['id']}", headers=stranger.headers)).status_code == 404
    assert (await console.get(f"/certification/runs/{run['id']}", headers=bearer(admin_token))).status_code == 200
    assert (
        await console.post("/certification/runs", json={"integration_id": integration["id"]}, headers=stranger.headers)
    ).status_code == 404


async def test_a_skipped_or_faked_case_fails_alone_with_its_evidence(
    console: httpx.AsyncClient, portal: httpx.AsyncClient, make_partner: MakePartner, tenant: Tenant
) -> None:
    """The partner's till does the money cases, then fakes two: it resends its offline sales under new client ids
    (the same sales created twice) and refunds a card payment the gateway never hears of (no webhook ever comes).
    It skips the rest. At completion exactly the faked and skipped cases fail, each saying why, with evidence."""
    partner = await make_partner()
    integration = (
        await console.post("/integrations", json={"name": "Fake Till", "version": "0.9"}, headers=partner.headers)
    ).json()
    run = (
        await console.post("/certification/runs", json={"integration_id": integration["id"]}, headers=partner.headers)
    ).json()
    as_run = {**tenant.as_device, HEADER: run["id"]}
    card = await a_till_session(portal, tenant, run["id"])
    paid = (await portal.get(f"/payments?bill_id={card['id']}", headers=tenant.as_device)).json()["items"][0]
    refund = await portal.post("/refunds", json={"payment_id": paid["id"], "amount": 100},
                               headers={**as_run, "Idempotency-Key": uuid.uuid4().hex})  # fmt: skip
    assert refund.status_code == 201 and refund.json()["status"] == "pending", refund.text  # and no webhook, ever

    taken_at = datetime.now(UTC).isoformat()
    sale = {"taken_at": taken_at, "items": [{"product_id": tenant.products[0]["id"], "quantity": 2}]}
    first = await portal.post("/sync", json={"orders": [{**sale, "client_order_id": "till-a-1"}]}, headers=as_run)
    resent = await portal.post("/sync", json={"orders": [{**sale, "client_order_id": "till-a-1-again"}]},
                               headers=as_run)  # fmt: skip
    assert [r["status"] for r in first.json()["results"] + resent.json()["results"]] == ["created", "created"]
    twice = [first.json()["results"][0]["order_id"], resent.json()["results"][0]["order_id"]]

    await until_passed(console, partner, run["id"], {"sale_by_cash", "sale_by_card", "split_tender",
                                                     "void_before_capture"})  # fmt: skip
    await asyncio.sleep(0.5)  # the last events (the sync's, the refund's) projected too
    completed = await console.post(f"/certification/runs/{run['id']}/complete", headers=partner.headers)
    assert completed.status_code == 200, completed.text
    body = completed.json()
    cases = {c["id"]: c for c in body["cases"]}
    assert body["result"] == "failed"
    assert {k for k, c in cases.items() if c["status"] == "passed"} == {
        "sale_by_card", "sale_by_cash", "split_tender", "void_before_capture"
    }  # fmt: skip
    faked = cases["offline_forwarded"]
    assert faked["status"] == "failed" and "created twice" in faked["detail"], faked
    assert all(order_id in faked["detail"] for order_id in twice) and len(faked["evidence"]) == 2
    for case in ("partial_refund", "full_refund"):
        assert cases[case]["status"] == "failed", cases[case]
        assert (
            refund.json()["id"] in cases[case]["detail"] and "never confirmed by the gateway" in cases[case]["detail"]
        )
        assert len(cases[case]["evidence"]) == 1
    for skipped in ("declined_then_good", "idempotent_retry", "token_renewed", "shift_closed", "close_of_business",
                    "credits_reallocated"):  # fmt: skip
        assert cases[skipped]["status"] == "failed" and cases[skipped]["detail"].startswith("no "), cases[skipped]

    # The evidence is the platform's own events: the report page shows them beside each verdict.
    page = await console.get(f"/certification/runs/{run['id']}/report.html", headers=partner.headers)
    assert page.status_code == 200 and faked["evidence"][0] in page.text


def smartpos(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "smartpos_cli", *args], cwd=ROOT, capture_output=True, text=True, timeout=60
    )


async def test_a_completed_run_is_a_signed_report_that_verifies_offline_even_after_a_key_rotation(
    console: httpx.AsyncClient, make_partner: MakePartner, admin_token: str, tmp_path: Path
) -> None:
    partner = await make_partner()
    integration = (
        await console.post("/integrations", json={"name": "Signed Till", "version": "2.0"}, headers=partner.headers)
    ).json()
    run = (
        await console.post("/certification/runs", json={"integration_id": integration["id"]}, headers=partner.headers)
    ).json()
    assert (
        await console.get(f"/certification/runs/{run['id']}/report.html", headers=partner.headers)
    ).status_code == 409
    completed = await console.post(f"/certification/runs/{run['id']}/complete", headers=partner.headers)
    assert completed.status_code == 200, completed.text
    body = completed.json()
    # Nothing was shown: every case failed (pending at completion), so the run failed — and says why, case by case.
    assert body["status"] == "completed" and body["result"] == "failed"
    assert {c["status"] for c in body["cases"]} == {"failed"}
    again = await console.post(f"/certification/runs/{run['id']}/complete", headers=partner.headers)
    assert (again.status_code, code(again)) == (409, "run_completed")

    report = tmp_path / "report.jws"
    report.write_text(body["report"])
    keys = tmp_path / "jwks.json"
    keys.write_text((await console.get("/.well-known/jwks.json")).text)  # published, no token needed
    verified = smartpos("certification", "verify", str(report), "--jwks", str(keys))
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert f"VALID: run {run['id']}" in verified.stdout and ": failed (0/13 cases passed)" in verified.stdout

    # One byte changed anywhere in the signed part: the signature check fails.
    header, payload, signature = body["report"].split(".")
    flipped = payload[:10] + ("A" if payload[10] != "A" else "B") + payload[11:]
    tampered = tmp_path / "tampered.jws"
    tampered.write_text(".".join((header, flipped, signature)))
    refused = smartpos("certification", "verify", str(tampered), "--jwks", str(keys))
    assert refused.returncode == 1 and refused.stdout.startswith("INVALID")

    # After a rotation the old report still verifies against the published keys (the retired one is kept).
    rotated = await console.post("/report-keys/rotate", headers=bearer(admin_token))
    assert rotated.status_code == 200
    keys.write_text((await console.get("/.well-known/jwks.json")).text)
    assert len(json.loads(keys.read_text())["keys"]) >= 2
    assert smartpos("certification", "verify", str(report), "--jwks", str(keys)).returncode == 0
    assert (await console.post("/report-keys/rotate", headers=partner.headers)).status_code == 403

    page = await console.get(f"/certification/runs/{run['id']}/report.html", headers=partner.headers)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "Sale paid by card" in page.text and run["id"] in page.text and "failed" in page.text


async def test_a_passed_run_is_certified_only_by_its_partner_and_an_admin(
    console: httpx.AsyncClient, portal: httpx.AsyncClient, make_partner: MakePartner, tenant: Tenant, admin_token: str
) -> None:
    partner = await make_partner()
    integration = (
        await console.post("/integrations", json={"name": "Pay Till", "version": "3.1"}, headers=partner.headers)
    ).json()
    run = (
        await console.post(
            "/certification/runs",
            json={"integration_id": integration["id"], "checklist": "pos-payments-v1"},
            headers=partner.headers,
        )
    ).json()
    early = await console.post(f"/certification/runs/{run['id']}/approvals", headers=partner.headers)
    assert (early.status_code, code(early)) == (409, "run_not_passed")  # still running
    await a_till_session(portal, tenant, run["id"])
    await until_passed(
        console, partner, run["id"], {"sale_by_cash", "sale_by_card", "split_tender", "void_before_capture"}
    )
    completed = (await console.post(f"/certification/runs/{run['id']}/complete", headers=partner.headers)).json()
    assert completed["result"] == "passed", completed["cases"]

    signed = await console.post(f"/certification/runs/{run['id']}/approvals", headers=partner.headers)
    assert signed.status_code == 200 and signed.json()["certified_at"] is None  # the partner alone: not certified
    twice = await console.post(f"/certification/runs/{run['id']}/approvals", headers=partner.headers)
    assert (twice.status_code, code(twice)) == (409, "already_approved")
    stranger = await make_partner()
    assert (
        await console.post(f"/certification/runs/{run['id']}/approvals", headers=stranger.headers)
    ).status_code == 404
    assert (await run_of(console, partner, run["id"]))["certified_at"] is None

    by_admin = await console.post(f"/certification/runs/{run['id']}/approvals", headers=bearer(admin_token))
    assert by_admin.status_code == 200, by_admin.text
    certified = by_admin.json()
    assert certified["certified_at"] is not None
    assert sorted(a["role"] for a in certified["approvals"]) == ["admin", "partner"]

    # A failed run is never signed off.
    failed = (
        await console.post("/certification/runs", json={"integration_id": integration["id"]}, headers=partner.headers)
    ).json()
    await console.post(f"/certification/runs/{failed['id']}/complete", headers=partner.headers)
    refused = await console.post(f"/certification/runs/{failed['id']}/approvals", headers=bearer(admin_token))
    assert (refused.status_code, code(refused)) == (409, "run_not_passed")


async def test_production_takes_a_rollout_only_with_a_certified_report_from_the_sandbox(
    console: httpx.AsyncClient,
    portal: httpx.AsyncClient,
    make_partner: MakePartner,
    tenant: Tenant,
    admin_token: str,
    production_console_database: TestDatabase,
    auth_app: FastAPI,
) -> None:
    # The sandbox: a run passed, completed and signed off by the partner and an admin.
    partner = await make_partner()
    admin = bearer(admin_token)
    integration = (
        await console.post("/integrations", json={"name": "Live Till", "version": "7.2"}, headers=partner.headers)
    ).json()
    run = (
        await console.post(
            "/certification/runs",
            json={"integration_id": integration["id"], "checklist": "pos-payments-v1"},
            headers=partner.headers,
        )
    ).json()
    await a_till_session(portal, tenant, run["id"])
    await until_passed(
        console, partner, run["id"], {"sale_by_cash", "sale_by_card", "split_tender", "void_before_capture"}
    )
    uncertified = (await console.post(f"/certification/runs/{run['id']}/complete", headers=partner.headers)).json()[
        "report"
    ]
    await console.post(f"/certification/runs/{run['id']}/approvals", headers=partner.headers)
    certified = (await console.post(f"/certification/runs/{run['id']}/approvals", headers=admin)).json()["report"]
    sandbox_keys = (await console.get("/.well-known/jwks.json")).text

    # Production: its own console, trusting the sandbox's report keys; the integration registered there too.
    async def jwks() -> dict[str, Any]:
        keys: dict[str, Any] = await auth_app.state.keyring.jwks()
        return keys

    settings = ConsoleSettings(
        env="production",
        database_url=production_console_database.url,  # production has a database of its own
        auth_issuer=ISSUER,
        redis_url=redis_url(),
        nats_url=nats_url(),
        access_log=False,
        key_encryption_key="bm90LXRoZS1kZXYta2V5LWZvci1jb25zb2xlLXJlcCE=",
        trusted_report_jwks=sandbox_keys,
        # Its projectors from now on, on consumers of its own: not the shared stream's whole history (on a NATS
        # that benchmarks filled, reading it all made this test time out).
        pilot_projector_durable=f"console-pilot-prod-{uuid.uuid4().hex[:12]}",
        pilot_projector_start="new",
        pilot_projector_inactive_seconds=120,
        audit_projector_durable=f"console-audit-prod-{uuid.uuid4().hex[:12]}",
        audit_projector_start="new",
        audit_projector_inactive_seconds=120,
    )
    async with running(build_console(settings, jwks_loader=jwks), "http://console.production") as production:
        live = (
            await production.post(
                "/integrations",
                json={"name": "Live Till", "version": "7.2", "partner_id": partner.client_id},
                headers=admin,
            )
        ).json()
        other = (
            await production.post(
                "/integrations",
                json={"name": "Live Till", "version": "7.3", "partner_id": partner.client_id},
                headers=admin,
            )
        ).json()
        body = {"integration_id": live["id"], "merchant_id": tenant.merchant_id}
        missing = await production.post("/rollouts", json=body, headers=admin)
        assert (missing.status_code, code(missing)) == (422, "certification_required")
        for report in (uncertified, certified[:-3] + ("AAA" if not certified.endswith("AAA") else "BBB")):
            refused = await production.post("/rollouts", json={**body, "certification_report": report}, headers=admin)
            assert (refused.status_code, code(refused)) == (422, "certification_invalid"), report[:20]
        wrong = await production.post(
            "/rollouts",
            json={"integration_id": other["id"], "merchant_id": tenant.merchant_id, "certification_report": certified},
            headers=admin,
        )
        assert (wrong.status_code, code(wrong)) == (422, "certification_invalid")  # another version
        accepted = await production.post("/rollouts", json={**body, "certification_report": certified}, headers=admin)
        assert accepted.status_code == 201, accepted.text
        await production.post(f"/rollouts/{accepted.json()['id']}/rollback", headers=admin)
