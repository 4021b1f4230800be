"""`smartpos demo` as a newcomer runs it: the command in its own process against device-auth and a portal
(mock gateway) under uvicorn, over HTTP only; and its patience with a store device-auth has not heard of yet."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from device_auth.clients.bootstrap import bootstrap
from device_auth.settings import AuthSettings
from smartpos_cli.demo import DemoError, register_device
from tests.support.databases import TestDatabase
from tests.support.processes import ROOT, ServiceProcess

STEPS = (
    "/.well-known/oauth-authorization-server",
    "/oauth/token",
    "POST {portal}/merchants",
    "POST {portal}/stores",
    "POST {portal}/products",
    "POST {auth}/devices",
    "private_key_jwt assertion",
    "POST {portal}/orders",
    "POST {portal}/bills",
    "POST {portal}/payments  Idempotency-Key",
    "GET  {portal}/orders/",
    "POST {portal}/refunds  Idempotency-Key",
    "GET  {portal}/refunds/",
    "POST {portal}/sync",
    "POST {portal}/sync again",
    "POST {portal}/payments/",
)


def smartpos(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "smartpos_cli", *args],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=90,
    )


def assert_whole_checkout(result: subprocess.CompletedProcess[str], portal: str, auth: str) -> None:
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    position = 0
    for step in STEPS:
        found = out.find(step.format(portal=portal, auth=auth), position)
        assert found >= 0, f"{step!r} missing (or out of order) in:\n{out}"
        position = found
    assert "status=completed" in out
    assert "checkout complete: order ord_" in out and "paid" in out.splitlines()[-1]
    assert "refunded_amount=450" in out and "succeeded (450 back to the card)" in out.splitlines()[-1]
    assert "status=created" in out and "status=duplicate" in out
    assert "status=canceled" in out or "409 payment_not_voidable" in out


def test_demo_checks_out_with_credentials_file_and_url_options(
    stack: dict[str, ServiceProcess], databases: dict[str, TestDatabase], tmp_path: Path
) -> None:
    auth, portal = stack["auth"], stack["portal"]
    credentials = tmp_path / "admin-client.json"
    credentials.write_text(json.dumps(asyncio.run(bootstrap(AuthSettings(database_url=databases["device-auth"].url)))))
    result = smartpos(
        "demo", "--portal-url", portal.url, "--auth-url", auth.url, "--credentials", str(credentials), env={}
    )
    assert_whole_checkout(result, portal.url, auth.url)
    assert f"(from {credentials})" in result.stdout


def test_demo_finds_services_by_port_and_bootstraps_the_admin_itself(
    stack: dict[str, ServiceProcess], service_env: dict[str, str], tmp_path: Path
) -> None:
    auth, portal = stack["auth"], stack["portal"]
    env = {**service_env, "PORTAL_PORT": str(portal.port), "AUTH_PORT": str(auth.port)}
    result = smartpos("demo", "--credentials", str(tmp_path / "none.json"), env=env)
    assert_whole_checkout(result, portal.url, auth.url)
    assert "smartpos admin bootstrap" in result.stdout


def test_demo_says_when_the_platform_is_not_running(tmp_path: Path) -> None:
    credentials = tmp_path / "admin.json"
    credentials.write_text(json.dumps({"client_id": "cli_x", "client_secret": "s"}))
    result = smartpos(
        "demo",
        "--portal-url",
        "http://127.0.0.1:9",
        "--auth-url",
        "http://127.0.0.1:9",
        "--credentials",
        str(credentials),
        env={},
    )
    assert result.returncode == 1
    assert "Is `make run` up?" in result.stderr


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def devices_answering(statuses: list[int]) -> tuple[httpx.Client, list[int]]:
    """A device-auth whose POST /devices answers the given statuses in turn (the last one from then on)."""
    seen: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        status = statuses[min(len(seen), len(statuses) - 1)]
        seen.append(status)
        body = {"id": "dev_1", "client_id": "dev_1", "status": "active"} if status == 201 else {"status": status}
        return httpx.Response(status, json=body)

    return httpx.Client(transport=httpx.MockTransport(handler)), seen


BODY = {"merchant_id": "mer_1", "store_id": "sto_1", "name": "till", "jwks": {"keys": []}}


def test_device_registration_waits_for_a_store_device_auth_has_not_heard_of_yet() -> None:
    client, seen = devices_answering([404, 404, 404, 201])
    clock, lines = FakeClock(), list[str]()
    device = register_device(client, "http://auth", {}, BODY, lines.append, clock=clock, sleep=clock.sleep)
    assert device["id"] == "dev_1"
    assert seen == [404, 404, 404, 201]
    assert any("retrying" in line for line in lines)


def test_device_registration_gives_up_on_404_after_ten_seconds() -> None:
    client, seen = devices_answering([404])
    clock = FakeClock()
    with pytest.raises(DemoError, match="expected 201, got 404"):
        register_device(client, "http://auth", {}, BODY, lambda _: None, clock=clock, sleep=clock.sleep)
    assert 10.0 <= clock.now < 10.5
    assert len(seen) > 10


def test_device_registration_does_not_retry_other_errors() -> None:
    client, seen = devices_answering([422])
    clock = FakeClock()
    with pytest.raises(DemoError, match="got 422"):
        register_device(client, "http://auth", {}, BODY, lambda _: None, clock=clock, sleep=clock.sleep)
    assert seen == [422]
