"""The operator's command line: `smartpos migrate`, `smartpos admin bootstrap`, `smartpos seed`."""

from __future__ import annotations

import asyncio
import json
from typing import Annotated

import typer

from . import migrate as migrations

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
