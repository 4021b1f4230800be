"""`smartpos terminal`: the simulated terminal (workspace package `smartpos_terminal`) from the command line.

smartpos terminal demo                      # a shop set up (or the device file's), then a whole day at the till
smartpos terminal run split-tender --device-file .infra/sandbox/devices/….json
smartpos terminal register --merchant-id mer_… --store-id sto_… --device-file till.json
smartpos terminal certify --integration-id int_… --partner-credentials partner.json --device-file till.json
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import httpx
import typer

from smartpos_terminal import DeviceFile, DeviceKey, Terminal, TerminalError, register
from smartpos_terminal.certification import BackOffice, PartnerConsole, walk_pos_core
from smartpos_terminal.scenarios import SCENARIOS, Till, set_up_demo_shop

from .demo import DemoError, load_admin_credentials

app = typer.Typer(help="a simulated terminal (sandbox)", no_args_is_help=True)
DEMO_DEVICE = Path(".infra") / "sandbox" / "devices" / "demo-till.json"
ADMIN_CREDENTIALS = Path(".infra") / "admin-client.json"

PortalUrl = Annotated[str | None, typer.Option(help="portal base URL (default http://127.0.0.1:$PORTAL_PORT or :8000)")]
AuthUrl = Annotated[
    str | None, typer.Option(help="device-auth base URL (default http://127.0.0.1:$AUTH_PORT or :8002)")
]
Credentials = Annotated[Path, typer.Option(help="admin client JSON (written by `make run`)")]
CertificationRun = Annotated[
    str | None,
    typer.Option(
        help="a certification run (crt_…): every request carries SmartPOS-Certification-Run",
        rich_help_panel="Certification",
    ),
]


def _urls(portal_url: str | None, auth_url: str | None) -> tuple[str, str]:
    portal = portal_url or f"http://127.0.0.1:{os.environ.get('PORTAL_PORT') or 8000}"
    auth = auth_url or f"http://127.0.0.1:{os.environ.get('AUTH_PORT') or 8002}"
    return portal, auth


def _admin_token(client: httpx.Client, auth: str, credentials: Path) -> str:
    return _client_token(client, auth, credentials, "admin")


def _client_token(client: httpx.Client, auth: str, credentials: Path, who: str) -> str:
    admin = load_admin_credentials(credentials)
    response = client.post(
        f"{auth}/oauth/token",
        data={"grant_type": "client_credentials"},
        auth=(admin["client_id"], admin["client_secret"]),
    )
    if response.status_code != 200:
        raise DemoError(f"{who} token: {response.status_code} {response.text[:300]}")
    return str(response.json()["access_token"])


def _till(device: DeviceFile, portal: str, auth: str, client: httpx.Client, run: str | None = None) -> Till:
    terminal = Terminal(
        portal, auth, device.device_id, device.key, client=client, echo=typer.echo, certification_run=run
    )
    if not device.products:
        raise DemoError("the device file lists no products to sell")
    return Till(terminal, list(device.products), typer.echo)


def _run(
    scenario: str,
    device_file: Path | None,
    portal_url: str | None,
    auth_url: str | None,
    credentials: Path,
    certification_run: str | None = None,
) -> None:
    portal, auth = _urls(portal_url, auth_url)
    try:
        with httpx.Client(timeout=15) as client:
            path = device_file or DEMO_DEVICE
            if path.is_file():
                device = DeviceFile.load(path)
                typer.echo(f"device {device.device_id} at store {device.store_id} (from {path})")
            else:
                typer.echo(f"no device file {path}: setting up a demo shop (the admin client of `make run`):")
                device = set_up_demo_shop(client, portal, auth, _admin_token(client, auth, credentials), typer.echo)
                device.save(path)
                typer.echo(f"  device file (with its private key, mode 0600): {path}")
            till = _till(device, portal, auth, client, certification_run)
            done = SCENARIOS[scenario](till)
            typer.echo(f"done: {scenario} ({till.terminal.sign_ins} sign-in(s))")
            if isinstance(done, dict) and "shift" in done:
                shift = done["shift"]
                typer.echo(
                    f"shift {shift['id']}: expected {shift['expected_cash']}, counted {shift['counted_cash']}, "
                    f"difference {shift['difference']}"
                )
    except (DemoError, TerminalError, RuntimeError) as exc:
        typer.echo(f"terminal failed: {exc}", err=True)
        raise typer.Exit(1) from None
    except httpx.TransportError as exc:
        typer.echo(f"terminal failed: {exc.request.url} does not answer. Is `make run` up?", err=True)
        raise typer.Exit(1) from None


@app.command()
def demo(
    device_file: Annotated[
        Path | None, typer.Option(help=f"a device file (default {DEMO_DEVICE}, set up if missing)")
    ] = None,
    portal_url: PortalUrl = None,
    auth_url: AuthUrl = None,
    credentials: Credentials = ADMIN_CREDENTIALS,
    certification_run: CertificationRun = None,
) -> None:
    """A whole day at the till: shift, card, cash, split tender, refund, void, offline and forward, close."""
    _run("day", device_file, portal_url, auth_url, credentials, certification_run)


@app.command("run")
def run_scenario(
    scenario: Annotated[str, typer.Argument(help=", ".join(SCENARIOS))],
    device_file: Annotated[Path | None, typer.Option(help=f"a device file (default {DEMO_DEVICE})")] = None,
    portal_url: PortalUrl = None,
    auth_url: AuthUrl = None,
    credentials: Credentials = ADMIN_CREDENTIALS,
    certification_run: CertificationRun = None,
) -> None:
    """One scripted scenario (smartpos_terminal/scenarios.py)."""
    if scenario not in SCENARIOS:
        raise typer.BadParameter(f"one of {', '.join(SCENARIOS)}", param_hint="SCENARIO")
    _run(scenario, device_file, portal_url, auth_url, credentials, certification_run)


@app.command("register")
def register_device(
    merchant_id: Annotated[str, typer.Option(help="mer_…")],
    store_id: Annotated[str, typer.Option(help="sto_…")],
    device_file: Annotated[Path, typer.Option(help="where to write the device file (with its private key)")],
    name: Annotated[str, typer.Option(help="the device's name")] = "till",
    portal_url: PortalUrl = None,
    auth_url: AuthUrl = None,
    credentials: Credentials = ADMIN_CREDENTIALS,
) -> None:
    """Generate a key, register the device with device-auth (admin client), write its device file."""
    portal, auth = _urls(portal_url, auth_url)
    try:
        with httpx.Client(timeout=15) as client:
            token = _admin_token(client, auth, credentials)
            key = DeviceKey.generate()
            device = register(client, auth, token, merchant_id, store_id, name, key)
            products = (
                client.get(
                    f"{portal}/products",
                    params={"merchant_id": merchant_id},
                    headers={"Authorization": f"Bearer {token}"},
                )
                .json()
                .get("items", [])
            )
    except (DemoError, RuntimeError) as exc:
        typer.echo(f"register failed: {exc}", err=True)
        raise typer.Exit(1) from None
    listed = tuple({"id": p["id"], "name": p["name"], "unit_price": p["unit_price"]} for p in products)
    DeviceFile(device["id"], merchant_id, store_id, key.kid, key.pem(), listed).save(device_file)
    typer.echo(f"device {device['id']} registered; device file {device_file}")


@app.command("certify")
def certify(
    integration_id: Annotated[str, typer.Option(help="the integration to certify (int_…)")],
    partner_credentials: Annotated[Path, typer.Option(help="the partner's client JSON {client_id, client_secret}")],
    device_file: Annotated[Path, typer.Option(help="the till's device file (a sandbox merchant's store)")],
    report_file: Annotated[Path, typer.Option(help="where to write the signed report (JWS)")] = Path("report.jws"),
    console_url: Annotated[
        str | None, typer.Option(help="console base URL (default http://127.0.0.1:$CONSOLE_PORT or :8003)")
    ] = None,
    portal_url: PortalUrl = None,
    auth_url: AuthUrl = None,
    credentials: Annotated[
        Path, typer.Option(help="a merchant or admin client JSON: the back office (test clock, credit programme)")
    ] = ADMIN_CREDENTIALS,
) -> None:
    """Walk every case of pos-core-v1 in the sandbox under a new certification run (with a test clock for the
    overnight cases), complete the run and write its signed report. Exit 1 unless every case passed."""
    portal, auth = _urls(portal_url, auth_url)
    console = console_url or f"http://127.0.0.1:{os.environ.get('CONSOLE_PORT') or 8003}"
    try:
        with httpx.Client(timeout=60) as client:
            device = DeviceFile.load(device_file)
            partner = PartnerConsole(client, console, _client_token(client, auth, partner_credentials, "partner"))
            run = partner.start_run(integration_id)
            typer.echo(f"certification run {run['id']} ({run['checklist']}, {len(run['cases'])} cases)")
            office = BackOffice(
                client,
                portal,
                _client_token(client, auth, credentials, "back office"),
                device.merchant_id,
                certification_run=run["id"],
            )
            till = _till(device, portal, auth, client, run["id"])
            walk_pos_core(till, office, device.store_id, typer.echo)
            judged = partner.wait_judged(run["id"])
            done = partner.complete(run["id"])
    except (DemoError, TerminalError, RuntimeError) as exc:
        typer.echo(f"certify failed: {exc}", err=True)
        raise typer.Exit(1) from None
    except httpx.TransportError as exc:
        typer.echo(f"certify failed: {exc.request.url} does not answer. Is `make run` up?", err=True)
        raise typer.Exit(1) from None
    for case in done["cases"]:
        typer.echo(f"  {case['status']:>7}  {case['id']}: {case['detail']}")
    report_file.write_text(done["report"])
    typer.echo(
        f"result: {done['result']}; signed report {report_file}"
        f" (sign-offs: POST /certification/runs/{run['id']}/approvals)"
    )
    if done["result"] != "passed":
        unjudged = [c["id"] for c in judged["cases"] if c["status"] != "passed"]
        typer.echo(f"not passed: {', '.join(unjudged)}", err=True)
        raise typer.Exit(1)
