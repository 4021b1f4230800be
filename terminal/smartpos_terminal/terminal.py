"""A terminal at the till: signs in with its key and renews its 120-second token before it expires, rings up,
bills, takes payments (card, cash, split), refunds, voids, keeps sales while offline and forwards them, and runs
its cash drawer shift — through the public HTTP API only."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import httpx

from .device import ASSERTION_TYPE, DeviceKey

Echo = Callable[[str], None]
Item = tuple[str, int]  # (product id, quantity)


class TerminalError(RuntimeError):
    """The platform answered something else than the terminal expected."""

    def __init__(self, what: str, response: httpx.Response) -> None:
        super().__init__(f"{what}: {response.status_code} {response.text[:400]}")
        self.status_code = response.status_code
        self.body = response.text


def _quiet(_: str) -> None:
    return None


class Terminal:
    def __init__(
        self,
        portal_url: str,
        auth_url: str,
        device_id: str,
        key: DeviceKey,
        *,
        client: httpx.Client | None = None,
        renew_before: float = 20.0,
        echo: Echo = _quiet,
        clock: Callable[[], float] = time.time,
        certification_run: str | None = None,
    ) -> None:
        self.portal_url = portal_url.rstrip("/")
        self.auth_url = auth_url.rstrip("/")
        self.device_id = device_id
        self.key = key
        self.client = client or httpx.Client(timeout=15)
        self.renew_before = renew_before
        self.echo = echo
        self.clock = clock
        self.issuer: str | None = None
        self._token: str | None = None
        self._expires_at = 0.0
        self.sign_ins = 0
        self.offline_queue: list[dict[str, Any]] = []
        # A certification run (console `crt_…`): every request says so, and the sandbox tags its events with it.
        self.certification_run = certification_run
        self.replayed = False  # whether the last answer was an idempotent replay of an earlier one

    # ------------------------------------------------------------------ signing in

    def token(self) -> str:
        """The access token, signed in again when it expires within `renew_before` seconds (tokens live 120 s)."""
        if self._token is None or self.clock() >= self._expires_at - self.renew_before:
            self.sign_in()
        assert self._token is not None
        return self._token

    def sign_in(self) -> None:
        if self.issuer is None:
            metadata = self.client.get(f"{self.auth_url}/.well-known/oauth-authorization-server")
            if metadata.status_code != 200:
                raise TerminalError("read the authorization server metadata", metadata)
            self.issuer = str(metadata.json()["issuer"])
        form = {
            "grant_type": "client_credentials",
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": self.key.assertion(self.device_id, self.issuer),
        }
        response = self.client.post(f"{self.auth_url}/oauth/token", data=form, headers=self._run_header())
        if response.status_code != 200:
            raise TerminalError("sign in", response)
        body = response.json()
        self._token = str(body["access_token"])
        self._expires_at = self.clock() + float(body["expires_in"])
        self.sign_ins += 1
        self.echo(f"  signed in as {self.device_id} (token for {body['expires_in']} s)")

    def renew(self) -> None:
        """Sign in again now, while the token is still valid: what `token()` does `renew_before` seconds before
        expiry, without waiting for it."""
        self.echo("  renewing the token before it expires")
        self.sign_in()

    def _run_header(self) -> dict[str, str]:
        return {} if self.certification_run is None else {"SmartPOS-Certification-Run": self.certification_run}

    # ------------------------------------------------------------------ the API

    def _call(
        self,
        method: str,
        path: str,
        what: str,
        *,
        body: Any = None,
        expect: Sequence[int] = (200, 201),
        money: bool = False,
        key: str | None = None,
    ) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {self.token()}", **self._run_header()}
        if money or key is not None:  # a retried money request must never move money twice
            headers["Idempotency-Key"] = key or uuid.uuid4().hex
        response = self.client.request(method, f"{self.portal_url}{path}", json=body, headers=headers)
        if response.status_code == 401:  # revoked or expired under us: sign in again, once
            self._token = None
            headers["Authorization"] = f"Bearer {self.token()}"
            response = self.client.request(method, f"{self.portal_url}{path}", json=body, headers=headers)
        if response.status_code not in expect:
            raise TerminalError(what, response)
        self.replayed = response.headers.get("Idempotent-Replayed") == "true"
        answer: dict[str, Any] = response.json()
        shown = " ".join(f"{k}={answer[k]}" for k in ("id", "status", "amount", "total_amount") if k in answer)
        self.echo(f"  {method} {path} -> {response.status_code} {shown}".rstrip())
        return answer

    def ring_up(self, items: Sequence[Item], *, client_order_id: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"items": [{"product_id": p, "quantity": q} for p, q in items]}
        if client_order_id is not None:
            body["client_order_id"] = client_order_id
        return self._call("POST", "/orders", "ring up", body=body, money=True)

    def bill(self, order_id: str) -> dict[str, Any]:
        return self._call("POST", "/bills", "bill the order", body={"order_id": order_id}, money=True)

    def pay(
        self, bill_id: str, amount: int, method: str = "card", *, key: str | None = None, **extra: Any
    ) -> dict[str, Any]:
        """Take a payment; `key` is the Idempotency-Key (a fresh one if not given): sending the same key again is
        a retry, answered with the first response (`replayed` is then True)."""
        body = {"bill_id": bill_id, "amount": amount, "method": method, **extra}
        return self._call("POST", "/payments", f"pay {amount} by {method}", body=body, money=True, key=key)

    def payment(self, payment_id: str) -> dict[str, Any]:
        return self._call("GET", f"/payments/{payment_id}", "read the payment")

    def wait_for(self, payment_id: str, *statuses: str, timeout: float = 30.0) -> dict[str, Any]:
        """Poll the payment until the gateway's webhook settled it into one of `statuses`."""
        deadline = time.monotonic() + timeout
        while True:
            payment = self._call("GET", f"/payments/{payment_id}", "read the payment")
            if payment["status"] in statuses or time.monotonic() > deadline:
                if payment["status"] not in statuses:
                    raise RuntimeError(
                        f"payment {payment_id} is {payment['status']}, not {statuses}, after {timeout} s"
                    )
                return payment
            time.sleep(0.1)

    def refund(self, payment_id: str, amount: int, reason: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"payment_id": payment_id, "amount": amount}
        if reason is not None:
            body["reason"] = reason
        return self._call("POST", "/refunds", f"refund {amount}", body=body, money=True)

    def void(self, payment_id: str) -> dict[str, Any]:
        return self._call("POST", f"/payments/{payment_id}/void", "void the payment")

    def order(self, order_id: str) -> dict[str, Any]:
        return self._call("GET", f"/orders/{order_id}", "read the order")

    # ------------------------------------------------------------------ the cash drawer

    def open_shift(self, opening_float: int) -> dict[str, Any]:
        return self._call("POST", "/shifts", "open the shift", body={"opening_float": opening_float})

    def close_shift(self, shift_id: str, counted_cash: int) -> dict[str, Any]:
        return self._call("POST", f"/shifts/{shift_id}/close", "close the shift", body={"counted_cash": counted_cash})

    # ------------------------------------------------------------------ offline

    def sell_offline(self, items: Sequence[Item], payments: Sequence[tuple[str, int]]) -> str:
        """A sale taken while the network is down: kept here with the terminal's own ids until `forward`."""
        client_order_id = f"off-{uuid.uuid4().hex[:16]}"
        self.offline_queue.append(
            {
                "client_order_id": client_order_id,
                "taken_at": datetime.now(UTC).isoformat(),
                "items": [{"product_id": p, "quantity": q} for p, q in items],
                "payments": [
                    {"client_payment_id": f"{client_order_id}-p{n}", "method": method, "amount": amount}
                    for n, (method, amount) in enumerate(payments, 1)
                ],
            }
        )
        self.echo(f"  (offline) kept sale {client_order_id}: {len(self.offline_queue)} waiting")
        return client_order_id

    def forward(self, *, keep: bool = False) -> list[dict[str, Any]]:
        """POST /sync with every sale kept offline; each comes back `created`, `duplicate` (already forwarded) or
        `rejected` (with the reason). The queue is emptied unless `keep` (to show that resending is harmless)."""
        if not self.offline_queue:
            return []
        answer = self._call("POST", "/sync", "forward the offline sales", body={"orders": self.offline_queue})
        if not keep:
            self.offline_queue = []
        results: list[dict[str, Any]] = answer["results"]
        return results
