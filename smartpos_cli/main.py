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
    service: Annotated[str, typer.Argument(help="portal | smarttab | device-auth | all")],
    action: Annotated[str, typer.Argument(help="upgrade REV | downgrade REV | current | history | verify")],
    revision: Annotated[str | None, typer.Argument(help="target revision (upgrade defaults to head)")] = None,
) -> None:
    """Run a database migration action for one service, or for all of them."""
    if action not in ACTIONS:
        raise typer.BadParameter(f"action must be one of {', '.join(ACTIONS)}", param_hint="ACTION")
    try:
        targets = migrations.resolve(service)
    except KeyError:
        raise typer.BadParameter("service must be portal, smarttab, device-auth or all", param_hint="SERVICE") from None
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
