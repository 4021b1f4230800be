"""The operator's command line: `smartpos migrate`, `smartpos admin bootstrap`, `smartpos demo`."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Annotated

import httpx
import typer

from . import migrate as migrations
from .terminal import app as terminal_app

app = typer.Typer(help="SmartPOS core operator commands", no_args_is_help=True, add_completion=False)

ACTIONS = ("upgrade", "downgrade", "current", "history", "verify")


@app.command()
def migrate(
    service: Annotated[str, typer.Argument(help="portal | smarttab | device-auth | console | all")],
    action: Annotated[str, typer.Argument(help="upgrade REV | downgrade REV | current | history | verify")],
    revision: Annotated[str | None, typer.Argument(help="target revision (upgrade defaults to head)")] = None,
) -> None:
    """Run a database migration action for one service, or for all of them."""
    if action not in ACTIONS:
        raise typer.BadParameter(f"action must be one of {', '.join(ACTIONS)}", param_hint="ACTION")
    try:
        targets = migrations.resolve(service)
    except KeyError:
        raise typer.BadParameter(
            "service must be portal, smarttab, device-auth, console or all", param_hint="SERVICE"
        ) from None
    if action == "downgrade" and not revision:
        raise typer.BadParameter("downgrade needs a revision, e.g. -1 or base", param_hint="REVISION")
    failed = 0
    for target in targets:
        typer.echo(f"== {target.name}: {action} {revision or ''}".rstrip(), err=True)
        failed |= migrations.run(target, action, revision)
    raise typer.Exit(failed)


admin = typer.Typer(help="platform administration", no_args_is_help=True)
app.add_typer(admin, name="admin")


@admin.callback()
def _admin() -> None:
    """Platform administration."""


@admin.command()
def bootstrap() -> None:
    """Create (or return) the platform admin client; prints {"client_id", "client_secret"} as one JSON line."""
    from device_auth.clients.bootstrap import bootstrap as run_bootstrap

    credentials = asyncio.run(run_bootstrap())
    typer.echo(json.dumps(credentials, separators=(", ", ": ")))


@admin.command("create-operator")
def create_operator(
    name: Annotated[str, typer.Option(help="who the operator is (shown in the audit log's clients)")],
) -> None:
    """Create another admin client, for another operator, straight against device-auth's database
    (AUTH_DATABASE_URL); prints {"client_id", "client_secret"} once. Admin tokens cannot create admins."""
    from device_auth.clients.bootstrap import create_operator as run_create

    typer.echo(json.dumps(asyncio.run(run_create(name)), separators=(", ", ": ")))


ADMIN_CREDENTIALS = Path(".infra") / "admin-client.json"  # written by `make run`


@app.command()
def demo(
    portal_url: Annotated[
        str | None, typer.Option(help="portal base URL (default: http://127.0.0.1:$PORTAL_PORT, else port 8000)")
    ] = None,
    auth_url: Annotated[
        str | None, typer.Option(help="device-auth base URL (default: http://127.0.0.1:$AUTH_PORT, else port 8002)")
    ] = None,
    credentials: Annotated[
        Path,
        typer.Option(help="admin client JSON; when missing, `smartpos admin bootstrap` runs (AUTH_DATABASE_URL)"),
    ] = ADMIN_CREDENTIALS,
) -> None:
    """A whole checkout against a running `make run`, printing each request and the key fields of each answer."""
    from .demo import DemoError, load_admin_credentials, run_demo

    portal = portal_url or f"http://127.0.0.1:{os.environ.get('PORTAL_PORT') or 8000}"
    auth = auth_url or f"http://127.0.0.1:{os.environ.get('AUTH_PORT') or 8002}"
    try:
        if credentials.is_file():
            admin = load_admin_credentials(credentials)
            typer.echo(f"admin client {admin['client_id']} (from {credentials})")
        else:
            from device_auth.clients.bootstrap import bootstrap as run_bootstrap

            admin = asyncio.run(run_bootstrap())
            typer.echo(f"admin client {admin['client_id']} (from `smartpos admin bootstrap`; no {credentials})")
        run_demo(portal, auth, admin, typer.echo)
    except DemoError as exc:
        typer.echo(f"demo failed: {exc}", err=True)
        raise typer.Exit(1) from None
    except httpx.TransportError as exc:
        typer.echo(
            f"demo failed: {exc.request.url} does not answer ({type(exc).__name__}). Is `make run` up? "
            "(ports from PORTAL_PORT / AUTH_PORT, or --portal-url / --auth-url)",
            err=True,
        )
        raise typer.Exit(1) from None


app.add_typer(terminal_app, name="terminal")

SANDBOX_DEVICES = Path(".infra") / "sandbox" / "devices"


@app.command()
def seed(
    seed: Annotated[int, typer.Option(help="the same seed gives the same data (rows, ids, keys)")] = 1,
    merchants: Annotated[int, typer.Option(min=1, max=200)] = 3,
    stores_per_merchant: Annotated[int, typer.Option(min=1, max=100)] = 2,
    days: Annotated[int, typer.Option(min=1, max=400, help="days of order history")] = 28,
    orders_per_day: Annotated[int, typer.Option(min=0, max=5000, help="a store's orders on an average day")] = 80,
    until: Annotated[
        str | None, typer.Option(help="the last day of history, YYYY-MM-DD (default: yesterday, UTC)")
    ] = None,
    devices_dir: Annotated[
        Path, typer.Option(help="where the tills' device files (with their keys) go")
    ] = SANDBOX_DEVICES,
) -> None:
    """Fill the sandbox with realistic shops: merchants in several countries, stores across timezones, catalogs,
    tills with their keys, and weeks of sales (PORTAL_DATABASE_URL, AUTH_DATABASE_URL, REDIS_URL). Sandbox only."""
    import time as clock
    from datetime import date

    from rich.progress import Progress

    from device_auth.settings import AuthSettings
    from portal.settings import PortalSettings
    from smartpos_shared.settings import Environment

    from .seed import Generator, Plan, SeedRefused, write

    if os.environ.get("SMARTPOS_ENV", "").strip().lower() == Environment.production:
        typer.echo("seed refused: SMARTPOS_ENV=production — seed data belongs in the sandbox only", err=True)
        raise typer.Exit(2)
    try:
        last = date.fromisoformat(until) if until else None
    except ValueError:
        raise typer.BadParameter("a date, YYYY-MM-DD", param_hint="--until") from None
    plan = Plan(seed, merchants, stores_per_merchant, days, orders_per_day, last)
    portal_settings, auth_settings = PortalSettings(), AuthSettings()
    started = clock.perf_counter()
    with Progress(transient=False) as progress:
        history = progress.add_task("sales history", total=merchants * stores_per_merchant * days)
        rows = Generator(plan).run(lambda n: progress.advance(history, n))
        writing = progress.add_task("writing (COPY)", total=rows.count() + len(rows.settlements))
        try:
            asyncio.run(
                write(
                    rows,
                    portal_settings.database_url.replace("+asyncpg", ""),
                    auth_settings.database_url.replace("+asyncpg", ""),
                    portal_settings.redis_url,
                    lambda _table, n: progress.advance(writing, n),
                )
            )
        except SeedRefused as exc:
            typer.echo(f"seed refused: {exc}", err=True)
            raise typer.Exit(1) from None
    for device in rows.devices:
        device.save(devices_dir / f"{device.device_id}.json")
    seconds = clock.perf_counter() - started
    total = rows.count()
    counts = ", ".join(f"{len(v):,} {k}" for k, v in rows.portal.items())
    typer.echo(f"seeded {total:,} rows in {seconds:.1f} s ({total / seconds:,.0f} rows/s): {counts}")
    typer.echo(
        f"{len(rows.devices)} tills: device files in {devices_dir} (e.g. smartpos terminal demo --device-file "
        f"{devices_dir / (rows.devices[0].device_id + '.json')})"
    )


certification = typer.Typer(help="certification reports", no_args_is_help=True)
app.add_typer(certification, name="certification")


@certification.callback()
def _certification() -> None:
    """Certification reports (console)."""


@certification.command("verify")
def certification_verify(
    file: Annotated[Path, typer.Argument(help="the report: a compact JWS, or a run's JSON with its `report`")],
    jwks: Annotated[
        str | None,
        typer.Option(help="the published keys: a JWKS file (offline) or URL (default: the console's, CONSOLE_PORT)"),
    ] = None,
) -> None:
    """Check a certification report's signature against the published report keys; exits 1 if it does not verify."""
    import jwt

    from console.certification.report import verify

    raw = file.read_text().strip()
    report = str(json.loads(raw)["report"]) if raw.startswith("{") else raw
    source = jwks or f"http://127.0.0.1:{os.environ.get('CONSOLE_PORT') or 8003}/.well-known/jwks.json"
    keys = (
        httpx.get(source, timeout=10).json()
        if source.startswith(("http://", "https://"))
        else json.loads(Path(source).read_text())
    )
    try:
        content = verify(report, keys)
    except (jwt.PyJWTError, ValueError) as exc:
        typer.echo(f"INVALID: {exc}")
        raise typer.Exit(1) from None
    passed = sum(1 for case in content["cases"] if case["status"] == "passed")
    typer.echo(
        f"VALID: run {content['run_id']} of integration {content['integration_id']} (partner {content['partner_id']}),"
        f" checklist {content['checklist']}: {content['result']} ({passed}/{len(content['cases'])} cases passed),"
        f" completed {content['completed_at']}"
        + (f", certified {content['certified_at']}" if content.get("certified_at") else ", not certified (yet)")
    )


config = typer.Typer(help="merchant configuration (staging -> production)", no_args_is_help=True)
app.add_typer(config, name="config")


@config.callback()
def _config() -> None:
    """Merchant configuration as a document, promoted between environments through change requests."""


@config.command("export")
def config_export(
    merchant_id: Annotated[str, typer.Option(help="the merchant whose configuration to export (mer_…)")],
    out: Annotated[Path, typer.Option(help="where to write the bundle (JSON)")] = Path("config-bundle.json"),
    portal_url: Annotated[
        str | None, typer.Option(help="portal base URL (default http://127.0.0.1:$PORTAL_PORT or :8000)")
    ] = None,
    auth_url: Annotated[
        str | None, typer.Option(help="device-auth base URL (default http://127.0.0.1:$AUTH_PORT or :8002)")
    ] = None,
    credentials: Annotated[Path, typer.Option(help="an admin (or that merchant's) client JSON")] = Path(
        ".infra/admin-client.json"
    ),
) -> None:
    """Write a merchant's live configuration as a bundle: what `POST /change-requests` takes in another
    environment (its `bundle`)."""
    from datetime import UTC, datetime

    from .demo import DemoError
    from .terminal import _client_token, _urls

    portal, auth = _urls(portal_url, auth_url)
    try:
        with httpx.Client(timeout=30) as client:
            token = _client_token(client, auth, credentials, "export")
            response = client.get(
                f"{portal}/config", params={"merchant_id": merchant_id}, headers={"Authorization": f"Bearer {token}"}
            )
    except (DemoError, httpx.TransportError) as exc:
        typer.echo(f"export failed: {exc}", err=True)
        raise typer.Exit(1) from None
    if response.status_code != 200:
        typer.echo(f"export failed: {response.status_code} {response.text[:300]}", err=True)
        raise typer.Exit(1)
    live = response.json()
    bundle = {
        "exported_from": {
            "portal_url": portal,
            "merchant_id": merchant_id,
            "version": live["version"],
            "checksum": live["checksum"],
            "exported_at": datetime.now(UTC).isoformat(),
        },
        "document": live["document"],
    }
    out.write_text(json.dumps(bundle, indent=2, sort_keys=True) + "\n")
    typer.echo(
        f"exported {merchant_id} (version {live['version']}, checksum {live['checksum'][:16]}…,"
        f" {len(live['document']['catalog'])} catalog items) to {out}"
    )


closeout = typer.Typer(help="close of business", no_args_is_help=True)
app.add_typer(closeout, name="closeout")


@closeout.callback()
def _closeout() -> None:
    """Close of business: sealed Z reports."""


@closeout.command("verify")
def closeout_verify(
    store: Annotated[str | None, typer.Option(help="only this store (sto_…)")] = None,
    file: Annotated[
        Path | None,
        typer.Option(
            help="check a saved chain offline instead: GET /stores/{id}/closeouts output, or a list of reports"
        ),
    ] = None,
) -> None:
    """Recompute every Z report's hash and link: from the portal database (PORTAL_DATABASE_URL), or from a file.
    Prints one line per store; exits 1 if any chain is broken."""
    from .closeouts import verify_database, verify_file

    lines, intact = verify_file(file) if file is not None else asyncio.run(verify_database(store))
    for line in lines:
        typer.echo(line)
    raise typer.Exit(0 if intact else 1)
