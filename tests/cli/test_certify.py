"""Issue 15's first "done when": the simulated terminal walks the whole pos-core-v1 checklist against the sandbox
(device-auth, portal with the mock gateway, console and a scheduler following test clocks, each its own process)
and gets a report that the partner and an admin sign off into `certified`, which verifies offline — and stops
verifying if one byte changes."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.cli.test_terminal import admin, smartpos
from tests.support.processes import ROOT, ServiceProcess


@pytest.fixture(scope="module")
def sandbox(service_env: dict[str, str]) -> Iterator[dict[str, Any]]:
    auth = ServiceProcess("device-auth", service_env)
    portal = ServiceProcess("portal", service_env)
    console = ServiceProcess("console", service_env)
    for proc in (auth, portal, console):
        proc.env.update(
            {"SMARTPOS_AUTH_ISSUER": auth.url, "SMARTPOS_PGW_MODE": "mock", "PORTAL_PORT": str(portal.port)}
        )
    # The scheduler as operators run it beside the portal: a pass at start, then what test clocks trigger.
    scheduler_env = {**portal.env, "SCHEDULER_INTERVAL_SECONDS": "3600", "SCHEDULER_CONCURRENCY": "2"}
    scheduler: subprocess.Popen[bytes] | None = None
    log = portal.log.name + ".scheduler"
    try:
        auth.start()
        portal.start()
        console.start()
        with open(log, "wb") as out:
            scheduler = subprocess.Popen(
                [sys.executable, "-m", "portal.scheduler"], cwd=ROOT, env=scheduler_env, stdout=out, stderr=out
            )
        yield {"auth": auth, "portal": portal, "console": console, "scheduler_log": log}
    finally:
        if scheduler is not None:
            scheduler.terminate()
            try:
                scheduler.wait(20)
            except subprocess.TimeoutExpired:
                scheduler.kill()
                scheduler.wait(5)
        for proc in (console, portal, auth):
            proc.stop()


def partner_client(auth: str, admin_headers: dict[str, str], path: Path) -> dict[str, str]:
    created = httpx.post(f"{auth}/clients", json={"role": "partner", "name": "Till Maker"}, headers=admin_headers)
    assert created.status_code == 201, created.text
    client = {"client_id": created.json()["client_id"], "client_secret": created.json()["client_secret"]}
    path.write_text(json.dumps(client))
    return client


def token(auth: str, client: dict[str, str]) -> dict[str, str]:
    response = httpx.post(
        f"{auth}/oauth/token",
        data={"grant_type": "client_credentials"},
        auth=(client["client_id"], client["client_secret"]),
    )
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def test_the_terminal_certifies_pos_core_v1_and_gets_a_verifiable_certified_report(
    sandbox: dict[str, Any],
    credentials: Path,
    tmp_path: Path,
) -> None:
    auth, portal, console = sandbox["auth"].url, sandbox["portal"].url, sandbox["console"].url
    as_admin = admin(auth, credentials)
    partner = partner_client(auth, as_admin, tmp_path / "partner.json")
    as_partner = token(auth, partner)
    integration = httpx.post(f"{console}/integrations", json={"name": "Till Maker POS", "version": "4.2"},
                             headers=as_partner).json()  # fmt: skip
    urls = ("--portal-url", portal, "--auth-url", auth, "--credentials", str(credentials))
    device_file = tmp_path / "till.json"
    shop = smartpos("terminal", "run", "cash-sale", *urls, "--device-file", str(device_file))  # the shop, the till
    assert shop.returncode == 0, shop.stdout + shop.stderr

    report_file = tmp_path / "report.jws"
    certified = smartpos("terminal", "certify", *urls, "--console-url", console, "--integration-id",
                         integration["id"], "--partner-credentials", str(tmp_path / "partner.json"),
                         "--device-file", str(device_file), "--report-file", str(report_file))  # fmt: skip
    scheduler_log = Path(sandbox["scheduler_log"]).read_text(errors="replace")[-3000:]
    assert certified.returncode == 0, certified.stdout + certified.stderr + scheduler_log
    run_id = certified.stdout.split("certification run ", 1)[1].split()[0]
    assert "result: passed" in certified.stdout
    run = httpx.get(f"{console}/certification/runs/{run_id}", headers=as_partner).json()
    assert run["result"] == "passed" and len(run["cases"]) == 13
    cases = {c["id"]: c for c in run["cases"]}
    assert {c["status"] for c in cases.values()} == {"passed"}, cases
    for case in cases.values():  # every verdict names the platform's own events
        assert case["evidence"] and all(e.startswith("evt_") for e in case["evidence"]), case
    assert "created once" in cases["idempotent_retry"]["detail"]
    assert "before it expired" in cases["token_renewed"]["detail"]
    assert "resent" in cases["offline_forwarded"]["detail"]
    assert cases["credits_reallocated"]["detail"].startswith("programme crp_")

    # Two sign-offs, the partner's and an admin's: certified, and the re-signed report verifies offline.
    approved = httpx.post(f"{console}/certification/runs/{run_id}/approvals", headers=as_partner)
    assert approved.status_code == 200 and approved.json()["certified_at"] is None, approved.text
    approved = httpx.post(f"{console}/certification/runs/{run_id}/approvals", headers=as_admin)
    assert approved.status_code == 200 and approved.json()["certified_at"], approved.text
    report_file.write_text(approved.json()["report"])
    jwks = tmp_path / "jwks.json"
    jwks.write_text(httpx.get(f"{console}/.well-known/jwks.json").text)
    verified = smartpos("certification", "verify", str(report_file), "--jwks", str(jwks))
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "13/13 cases passed" in verified.stdout and ", certified 20" in verified.stdout, verified.stdout
    header, payload, signature = report_file.read_text().split(".")
    flipped = payload[:20] + ("A" if payload[20] != "A" else "B") + payload[21:]
    report_file.write_text(".".join((header, flipped, signature)))
    refused = smartpos("certification", "verify", str(report_file), "--jwks", str(jwks))
    assert refused.returncode == 1 and refused.stdout.startswith("INVALID")
