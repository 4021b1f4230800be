"""`smartpos terminal` (the simulated terminal package) against device-auth and a portal with the mock gateway
under uvicorn: a whole day at the till, one scenario on its own, and a token renewed before it expires."""

from __future__ import annotations

import asyncio
import json
import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from ulid import ULID

from smartpos_terminal import DeviceFile, Terminal
from tests.support.databases import TestDatabase
from tests.support.processes import ROOT, ServiceProcess


def smartpos(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "smartpos_cli", *args],
        cwd=ROOT,
        env=os.environ.copy(),
        capture_output=True,
        text=True,
        timeout=120,
    )


def admin(auth: str, credentials: Path) -> dict[str, str]:
    client = json.loads(credentials.read_text())
    token = httpx.post(
        f"{auth}/oauth/token",
        data={"grant_type": "client_credentials"},
        auth=(client["client_id"], client["client_secret"]),
    ).json()["access_token"]
    return {"Authorization": f"Bearer {token}"}


def items(portal: str, path: str, headers: dict[str, str], **params: str) -> list[dict[str, Any]]:
    response = httpx.get(f"{portal}{path}", params=params, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()["items"]  # type: ignore[no-any-return]


def test_a_day_at_the_till(stack: dict[str, ServiceProcess], credentials: Path, tmp_path: Path) -> None:
    auth, portal = stack["auth"].url, stack["portal"].url
    device_file = tmp_path / "till.json"
    args = (
        "--portal-url",
        portal,
        "--auth-url",
        auth,
        "--credentials",
        str(credentials),
        "--device-file",
        str(device_file),
    )
    result = smartpos("terminal", "demo", *args)
    assert result.returncode == 0, result.stdout + result.stderr
    assert stat.S_IMODE(device_file.stat().st_mode) == 0o600  # it holds the till's private key
    device = DeviceFile.load(device_file)
    as_admin = admin(auth, credentials)

    orders = items(portal, "/orders", as_admin, merchant_id=device.merchant_id, limit="100")
    # card, cash, split tender, the voided-then-cash sale, two offline sales: six orders, all paid in full.
    assert len(orders) == 6 and {o["status"] for o in orders} == {"completed"}
    refunded = [o for o in orders if o["refunded_amount"]]  # one item of the card sale, back to the card
    assert len(refunded) == 1 and refunded[0]["refunded_amount"] == device.products[0]["unit_price"]
    assert "resent: ['duplicate', 'duplicate']" in result.stdout and "first: ['created', 'created']" in result.stdout
    assert "status=canceled" in result.stdout  # the void
    shift_line = [line for line in result.stdout.splitlines() if line.startswith("shift shf_")]
    assert shift_line and shift_line[0].endswith("difference 0"), result.stdout

    # The same device, one scenario on its own: split tender pays one bill with two tenders.
    again = smartpos("terminal", "run", "split-tender", *args)
    assert again.returncode == 0, again.stdout + again.stderr
    assert f"(from {device_file})" in again.stdout
    assert len(items(portal, "/orders", as_admin, merchant_id=device.merchant_id, limit="100")) == 7


def test_the_terminal_renews_its_token_before_it_expires(
    stack: dict[str, ServiceProcess], credentials: Path, tmp_path: Path
) -> None:
    auth, portal = stack["auth"].url, stack["portal"].url
    device_file = tmp_path / "till.json"
    assert (
        smartpos(
            "terminal",
            "run",
            "cash-sale",
            "--portal-url",
            portal,
            "--auth-url",
            auth,
            "--credentials",
            str(credentials),
            "--device-file",
            str(device_file),
        ).returncode
        == 0
    )
    device = DeviceFile.load(device_file)
    now = [1_000.0]
    till = Terminal(portal, auth, device.device_id, device.key, clock=lambda: now[0])
    order = till.ring_up([(device.products[0]["id"], 1)])
    assert till.sign_ins == 1
    now[0] += 90  # 30 s left of 120: still fine
    till.order(order["id"])
    assert till.sign_ins == 1
    now[0] += 15  # 15 s left: renewed before the call
    till.order(order["id"])
    assert till.sign_ins == 2


def test_a_terminal_in_a_certification_run_has_its_events_tagged(
    stack: dict[str, ServiceProcess], credentials: Path, databases: dict[str, TestDatabase], tmp_path: Path
) -> None:
    auth, portal = stack["auth"].url, stack["portal"].url
    run_id = f"crt_{ULID()}"
    device_file = tmp_path / "till.json"
    sold = smartpos("terminal", "run", "cash-sale", "--portal-url", portal, "--auth-url", auth, "--credentials",
                    str(credentials), "--device-file", str(device_file), "--certification-run", run_id)  # fmt: skip
    assert sold.returncode == 0, sold.stdout + sold.stderr

    async def tagged() -> list[str]:
        conn = await asyncpg.connect(databases["portal"].dsn)
        try:
            rows = await conn.fetch(
                "SELECT type FROM outbox WHERE payload->>'certification_run' = $1 ORDER BY position", run_id
            )
            return [r["type"] for r in rows]
        finally:
            await conn.close()

    types = asyncio.run(tagged())
    assert {"order.created", "bill.created", "payment.created", "payment.succeeded", "bill.paid"} <= set(types), types
