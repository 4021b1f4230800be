"""The platform as users run it, seeded with real data and real tokens, for the OpenAPI fuzzer.

Three uvicorn processes (device-auth first: the resource servers trust it as their issuer and fetch its JWKS over
HTTP), the portal with the `manual` gateway and the tests' webhook secret, all on the test databases. Then one
merchant's world is built through the public API, as an operator and a terminal would: two stores, products,
orders in every state with bills and payments, a signed-in device, and a second device the fuzzer may revoke or
re-key (never the one whose tokens it uses).
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from device_auth.clients.bootstrap import bootstrap
from device_auth.settings import AuthSettings
from tests.support.keys import DeviceKey, assertion_form
from tests.support.portal_fixtures import WEBHOOK_SECRET
from tests.support.processes import ROOT, ServiceProcess, wait_for

SERVICES = ("portal", "smarttab", "device-auth", "console")
ROLES = ("anonymous", "admin", "merchant", "device", "partner")


@dataclass
class Seed:
    """What the seeded platform holds, for the fuzzer to aim at."""

    merchant_id: str
    store_id: str  # the device's store
    other_store_id: str
    # Values that exist, by the parameter or field name that carries them: "order_id" -> [ord_…, …], and the
    # currencies the portal knows ("currency" is a free string in the document, checked against a list).
    ids: dict[str, list[str]] = field(default_factory=dict)
    pending: list[dict[str, Any]] = field(default_factory=list)  # {"pgw_reference", "amount"} of pending payments
    amounts: list[int] = field(default_factory=list)  # what bills have outstanding (and 1)
    issuer: str = ""  # device-auth's URL: the `aud` of a client assertion
    # Devices whose keys sign the client assertions the fuzzer sends to /oauth/token. Several, because failed
    # sign-ins are throttled per device (10 a minute); none of them is the device whose tokens the fuzzer uses.
    signers: list[tuple[str, DeviceKey]] = field(default_factory=list)


class Stack:
    def __init__(self, env: Mapping[str, str]) -> None:
        self.auth = ServiceProcess("device-auth", env)
        self.portal = ServiceProcess("portal", env)
        self.smarttab = ServiceProcess("smarttab", env)
        self.console = ServiceProcess("console", env)
        for proc in self.processes.values():
            proc.env.update(
                {
                    "SMARTPOS_AUTH_ISSUER": self.auth.url,
                    "SMARTPOS_PGW_MODE": "manual",
                    "SMARTPOS_PGW_WEBHOOK_SECRET": WEBHOOK_SECRET,
                    "PORTAL_PORT": str(self.portal.port),
                    # Log lines reach the file before the response leaves, so a 5xx's traceback can be read.
                    "PYTHONUNBUFFERED": "1",
                }
            )
        self.auth_database_url = env["AUTH_DATABASE_URL"]
        self.http = httpx.Client(timeout=10)  # one client: each new one loads the CA bundle, ~0.1 s
        self._log_offsets = dict.fromkeys(SERVICES, 0)

    @property
    def processes(self) -> dict[str, ServiceProcess]:
        return {"device-auth": self.auth, "portal": self.portal, "smarttab": self.smarttab, "console": self.console}

    def url(self, service: str) -> str:
        return self.processes[service].url

    def start(self) -> None:
        for proc in self.processes.values():  # all at once: each takes seconds to import and start
            proc.start(wait_healthy=False)
        for service, proc in self.processes.items():
            wait_for(lambda proc=proc: self._ready(proc), 60, interval=0.2, what=f"{service} ready")

    def _ready(self, proc: ServiceProcess) -> bool:
        if proc.proc is not None and proc.proc.poll() is not None:
            raise RuntimeError(f"{proc.service} exited with {proc.proc.returncode}:\n{proc.output()}")
        return self.http.get(f"{proc.url}/readyz", timeout=2).status_code == 200

    def stop(self) -> None:
        for proc in self.processes.values():
            proc.stop()
        self.http.close()

    def dead(self) -> dict[str, str]:
        """Services whose process has died, with the tail of their output (a crash is a finding too)."""
        return {
            name: proc.output()
            for name, proc in self.processes.items()
            if proc.proc is not None and proc.proc.poll() is not None
        }

    def server_error_cause(self, service: str) -> str | None:
        """What the service logged for the 5xx it just answered: the exception and the innermost frame of our own
        code, e.g. `TypeError: unhashable type: 'list' at services/device-auth/device_auth/devices/schemas.py:26`.

        The fuzzer sends one request at a time, so the `unhandled_error` lines logged since the last look belong to
        the last request."""
        path = Path(self.processes[service].log.name)
        with path.open("rb") as log:
            log.seek(self._log_offsets[service])
            new = log.read()
            self._log_offsets[service] += len(new)
        causes = []
        for line in new.decode(errors="replace").splitlines():
            if not line.startswith("{") or "unhandled_error" not in line:
                continue
            try:
                entry = json.loads(line, strict=False)
            except ValueError:
                continue
            causes.append(_cause(str(entry.get("exception", "")), str(entry.get("error_type", ""))))
        return "; ".join(causes) or None


def _cause(traceback: str, error_type: str) -> str:
    frames = re.findall(r'File "([^"]+)", line (\d+), in (\S+)', traceback)
    ours = [(f, n, fn) for f, n, fn in frames if "/site-packages/" not in f and str(ROOT) in f]
    where = f" at {Path(ours[-1][0]).relative_to(ROOT)}:{ours[-1][1]} ({ours[-1][2]})" if ours else ""
    # The root cause: asyncpg's error inside SQLAlchemy's DBAPIError, else the exception's own line.
    lines = [line.strip() for line in traceback.splitlines() if line.strip()]
    exception_lines = [line for line in lines if re.match(r"^[\w.]+(Error|Exception|Warning)\b.*:", line)]
    root = next((line for line in exception_lines if "asyncpg.exceptions." in line), None)
    what = root or (exception_lines[-1] if exception_lines else error_type)
    what = re.sub(r"^sqlalchemy\.exc\.\w+: \([^)]*\) ", "", what)
    return f"{what[:300]}{where}"


def _ok(response: httpx.Response, status: int = 201) -> dict[str, Any]:
    assert response.status_code == status, f"{response.request.method} {response.request.url}: {response.text}"
    body: dict[str, Any] = response.json()
    return body


class Tokens:
    """Real access tokens per role, minted on demand and again before they expire (a device's lives 120 s)."""

    LIFETIME_MARGIN = 0.5  # re-mint after half a token's lifetime

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.admin_credentials = asyncio.run(bootstrap(AuthSettings(database_url=stack.auth_database_url)))
        self.merchant_credentials: dict[str, str] = {}
        self.partner_credentials: dict[str, str] = {}
        self.device_id = ""
        self.device_key = DeviceKey()
        self._cache: dict[str, tuple[str, float]] = {}
        self.probe_store_id = ""

    def _mint(self, role: str) -> tuple[str, int]:
        token_url = f"{self.stack.auth.url}/oauth/token"
        if role == "admin":
            creds = self.admin_credentials
            response = self.stack.http.post(
                token_url,
                data={"grant_type": "client_credentials"},
                auth=(creds["client_id"], creds["client_secret"]),
            )
        elif role in ("merchant", "partner"):
            creds = self.merchant_credentials if role == "merchant" else self.partner_credentials
            response = self.stack.http.post(
                token_url,
                data={"grant_type": "client_credentials"},
                auth=(creds["client_id"], creds["client_secret"]),
            )
        elif role == "device":
            assertion = self.device_key.assertion(self.device_id, self.stack.auth.url)
            response = self.stack.http.post(token_url, data=assertion_form(assertion))
        else:
            raise ValueError(role)
        body = _ok(response, 200)
        return str(body["access_token"]), int(body["expires_in"])

    def token(self, role: str) -> str | None:
        if role == "anonymous":
            return None
        cached = self._cache.get(role)
        if cached is not None and time.monotonic() < cached[1]:
            return cached[0]
        token, expires_in = self._mint(role)
        self._await_trust(token)
        self._cache[role] = (token, time.monotonic() + expires_in * self.LIFETIME_MARGIN)
        return token

    def cached(self, role: str) -> str | None:
        """The token last minted for the role, if any (never mints)."""
        cached = self._cache.get(role)
        return cached[0] if cached else None

    def headers(self, role: str) -> dict[str, str]:
        token = self.token(role)
        return {"Authorization": f"Bearer {token}"} if token else {}

    def _await_trust(self, token: str) -> None:
        """A token signed by a key minted since a resource server last fetched the JWKS (the fuzzer rotates keys
        too) is refused until its next refetch (at most every 5 s): wait until both resource servers accept it,
        so that the run tests the API rather than a stale JWKS cache."""
        headers = {"Authorization": f"Bearer {token}"}
        probes = [f"{self.stack.portal.url}/stores?limit=1"]
        if self.probe_store_id:
            probes.append(f"{self.stack.smarttab.url}/stores/{self.probe_store_id}/live")
        for probe in probes:
            wait_for(
                lambda probe=probe: self.stack.http.get(probe, headers=headers).status_code != 401,
                15,
                interval=0.25,
                what=f"token accepted by {probe}",
            )


def seed(stack: Stack, tokens: Tokens) -> Seed:
    """One merchant's world, built through the API: what deep code paths need to exist."""
    portal, auth, http = stack.portal.url, stack.auth.url, stack.http
    as_admin = tokens.headers("admin")

    merchant = _ok(http.post(f"{portal}/merchants", json={"name": "Fuzz Kissa", "currency": "JPY"}, headers=as_admin))
    client = _ok(http.post(f"{auth}/clients", json={"merchant_id": merchant["id"], "name": "fuzz"}, headers=as_admin))
    tokens.merchant_credentials = {"client_id": client["client_id"], "client_secret": client["client_secret"]}
    as_merchant = tokens.headers("merchant")
    partner = _ok(http.post(f"{auth}/clients", json={"role": "partner", "name": "fuzz partner"}, headers=as_admin))
    tokens.partner_credentials = {"client_id": partner["client_id"], "client_secret": partner["client_secret"]}

    stores = [
        _ok(http.post(f"{portal}/stores", json={"name": name}, headers=as_merchant))["id"]
        for name in ("Shibuya", "Ueno")
    ]
    tokens.probe_store_id = stores[0]
    products = [
        _ok(
            http.post(
                f"{portal}/products",
                json={"name": f"item {i}", "unit_price": price, "sku": f"FUZZ-{i}"},
                headers=as_merchant,
            )
        )
        for i, price in enumerate((450, 700, 1200))
    ]

    # device-auth learns the two stores from their store.created events (within a second of their creation).
    for store_id in stores:
        for _ in range(200):
            probe = http.post(
                f"{auth}/devices",
                json={"store_id": store_id, "name": "probe", "jwks": {"keys": [DeviceKey().public_jwk]}},
                headers=as_merchant,
            )
            if probe.status_code != 404:
                break
            time.sleep(0.05)
        _ok(probe)
    device = _ok(
        http.post(
            f"{auth}/devices",
            json={
                "merchant_id": merchant["id"],
                "store_id": stores[0],
                "name": "till 1",
                "jwks": {"keys": [tokens.device_key.public_jwk]},
            },
            headers=as_admin,
        )
    )
    tokens.device_id = device["id"]
    # The device the fuzzer aims `/devices/{device_id}` at: it may revoke it or replace its keys.
    target_device = _ok(
        http.post(
            f"{auth}/devices",
            json={"store_id": stores[1], "name": "till 2", "jwks": {"keys": [DeviceKey().public_jwk]}},
            headers=as_merchant,
        )
    )

    signers = []
    for i in range(6):
        key = DeviceKey()
        signer = _ok(
            http.post(
                f"{auth}/devices",
                json={"store_id": stores[0], "name": f"signer {i}", "jwks": {"keys": [key.public_jwk]}},
                headers=as_merchant,
            )
        )
        signers.append((str(signer["id"]), key))

    def order(store_id: str, *lines: tuple[int, int]) -> dict[str, Any]:
        items = [{"product_id": products[i]["id"], "quantity": quantity} for i, quantity in lines]
        return _ok(http.post(f"{portal}/orders", json={"store_id": store_id, "items": items}, headers=as_merchant))

    def bill(order_id: str) -> dict[str, Any]:
        return _ok(http.post(f"{portal}/bills", json={"order_id": order_id}, headers=as_merchant))

    def pay(bill_id: str, amount: int, method: str) -> dict[str, Any]:
        return _ok(
            http.post(
                f"{portal}/payments",
                json={"bill_id": bill_id, "amount": amount, "method": method},
                headers={**as_merchant, "Idempotency-Key": f"fuzz-seed-{bill_id}-{method}"},
            )
        )

    orders, bills, payments, pending = [], [], [], []
    # open, billed, a pending card payment for the whole bill (the webhook can settle it)
    o1 = order(stores[0], (0, 2))
    b1 = bill(o1["id"])
    p1 = pay(b1["id"], b1["total_amount"], "card")
    # open, billed, a pending QR payment for part of the bill
    o2 = order(stores[0], (1, 1), (2, 1))
    b2 = bill(o2["id"])
    p2 = pay(b2["id"], 700, "qr")
    # paid in cash: bill paid, order completed
    o3 = order(stores[0], (2, 3))
    b3 = bill(o3["id"])
    p3 = pay(b3["id"], b3["total_amount"], "cash")
    # open and billed, nothing paid; open without a bill; one in the other store (the device must not see it)
    o4 = order(stores[0], (0, 1))
    b4 = bill(o4["id"])
    o5 = order(stores[0], (1, 4))
    o6 = order(stores[1], (0, 1))
    orders = [o["id"] for o in (o1, o2, o3, o4, o5, o6)]
    bills = [b["id"] for b in (b1, b2, b3, b4)]
    payments = [p["id"] for p in (p1, p2, p3)]
    pending = [{"pgw_reference": p["pgw_reference"], "amount": p["amount"]} for p in (p1, p2)]

    return Seed(
        merchant_id=merchant["id"],
        store_id=stores[0],
        other_store_id=stores[1],
        ids={
            "merchant_id": [merchant["id"]],
            "store_id": stores,
            "product_id": [p["id"] for p in products],
            "order_id": orders,
            "bill_id": bills,
            "payment_id": payments,
            "device_id": [target_device["id"]],
            "currency": ["JPY", "USD", "EUR"],
        },
        pending=pending,
        amounts=sorted({1, b1["total_amount"], b2["total_amount"] - 700, b4["total_amount"]}),
        issuer=auth,
        signers=signers,
    )
