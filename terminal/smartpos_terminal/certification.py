"""Certification in the sandbox: the till walks every case of `pos-core-v1` under a run's header, with a test
clock so the overnight run (close of business, credit programmes) happens in seconds, and the console judges each
case from the platform's own events. Nothing here tells the console what happened: it sees it.

    run = PartnerConsole(...).start_run(integration_id)            # crt_…
    till = Till(Terminal(..., certification_run=run["id"]), ...)
    walk_pos_core(till, BackOffice(..., certification_run=run["id"]))
    report = console.complete(run["id"])                            # a signed JWS
"""

from __future__ import annotations

import time
import uuid
from datetime import datetime, timedelta
from typing import Any

import httpx

from .scenarios import Till, card_sale, cash_sale, close_shift, offline, open_shift, split_tender, void
from .terminal import Echo, TerminalError

DECLINED = 51  # docs/sandbox.md: the mock gateway declines (insufficient_funds)


class _Http:
    def __init__(self, client: httpx.Client, base_url: str, token: str, certification_run: str | None) -> None:
        self.client = client
        self.base_url = base_url.rstrip("/")
        self.headers = {"Authorization": f"Bearer {token}"}
        if certification_run is not None:
            self.headers["SmartPOS-Certification-Run"] = certification_run

    def call(self, method: str, path: str, what: str, body: Any = None, expect: tuple[int, ...] = (200, 201)) -> Any:
        response = self.client.request(method, f"{self.base_url}{path}", json=body, headers=self.headers)
        if response.status_code not in expect:
            raise TerminalError(what, response)
        return response.json()


class BackOffice(_Http):
    """What the merchant's back office does for a run (a merchant or admin token): the test clock and a credit
    programme. Its requests carry the run too, so the overnight run a clock advance causes belongs to it."""

    def __init__(
        self,
        client: httpx.Client,
        portal_url: str,
        token: str,
        merchant_id: str,
        *,
        certification_run: str | None = None,
    ) -> None:
        super().__init__(client, portal_url, token, certification_run)
        self.merchant_id = merchant_id

    def test_clock(self, frozen_time: datetime) -> dict[str, Any]:
        body = {"merchant_id": self.merchant_id, "frozen_time": frozen_time.isoformat()}
        clock: dict[str, Any] = self.call("POST", "/test-clocks", "create a test clock", body)
        return clock

    def advance(self, clock_id: str, to: datetime, *, timeout: float = 60.0) -> dict[str, Any]:
        """Move the clock and wait until the overnight run has caught up (`ready`)."""
        clock: dict[str, Any] = self.call(
            "POST", f"/test-clocks/{clock_id}/advance", "advance the test clock", {"to": to.isoformat()}
        )
        deadline = time.monotonic() + timeout
        while clock["status"] != "ready":
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"test clock {clock_id} still {clock['status']} after {timeout} s (is a scheduler up?)"
                )
            time.sleep(0.2)
            clock = self.call("GET", f"/test-clocks/{clock_id}", "read the test clock")
        return clock

    def delete_clock(self, clock_id: str) -> None:
        response = self.client.delete(f"{self.base_url}/test-clocks/{clock_id}", headers=self.headers)
        if response.status_code not in (204, 404):
            raise TerminalError("delete the test clock", response)

    def credit_programme(self, store_id: str, allocation: int = 500) -> dict[str, Any]:
        """A daily programme with one enrolled account: each new business day allocates `allocation`."""
        account = self.call("POST", "/credit-accounts", "open a credit account", {"merchant_id": self.merchant_id,
                            "customer_ref": f"cert-{uuid.uuid4().hex[:12]}"})  # fmt: skip
        programme = self.call(
            "POST",
            "/credit-programmes",
            "create a credit programme",
            {"store_id": store_id, "name": "certification daily credit", "allocation_amount": allocation,
             "period": "daily"},
        )  # fmt: skip
        self.call("POST", f"/credit-programmes/{programme['id']}/enrolments", "enrol", {"account_id": account["id"]})
        return {"account": account, "programme": programme}


class PartnerConsole(_Http):
    """The partner's side of the console: runs, their verdicts, completion and sign-off."""

    def __init__(self, client: httpx.Client, console_url: str, token: str) -> None:
        super().__init__(client, console_url, token, None)

    def start_run(self, integration_id: str, checklist: str = "pos-core-v1") -> dict[str, Any]:
        body = {"integration_id": integration_id, "checklist": checklist}
        run: dict[str, Any] = self.call("POST", "/certification/runs", "start a certification run", body)
        return run

    def run(self, run_id: str) -> dict[str, Any]:
        run: dict[str, Any] = self.call("GET", f"/certification/runs/{run_id}", "read the run")
        return run

    def wait_judged(self, run_id: str, *, timeout: float = 30.0) -> dict[str, Any]:
        """Poll until every case passed (the console judges from events: within a second or so), or time out."""
        deadline = time.monotonic() + timeout
        while True:
            run = self.run(run_id)
            if all(c["status"] == "passed" for c in run["cases"]) or time.monotonic() > deadline:
                return run
            time.sleep(0.25)

    def complete(self, run_id: str) -> dict[str, Any]:
        run: dict[str, Any] = self.call("POST", f"/certification/runs/{run_id}/complete", "complete the run")
        return run

    def approve(self, run_id: str) -> dict[str, Any]:
        run: dict[str, Any] = self.call("POST", f"/certification/runs/{run_id}/approvals", "sign off the run")
        return run


def idempotent_retry(till: Till) -> dict[str, Any]:
    """The network drops after a payment was sent: the till sends it again with the same Idempotency-Key and gets
    the first answer back — one payment, not two."""
    till.echo("idempotent retry: a cash payment sent twice with one key")
    order = till.terminal.ring_up(till.items(1, 1))
    billed = till.terminal.bill(order["id"])
    key = f"retry-{uuid.uuid4().hex}"
    first = till.terminal.pay(billed["id"], billed["total_amount"], "cash", key=key)
    again = till.terminal.pay(billed["id"], billed["total_amount"], "cash", key=key)
    if again["id"] != first["id"] or not till.terminal.replayed:
        raise RuntimeError(f"the retry was not answered from the first response: {first['id']} / {again['id']}")
    till.cash += first["amount"]
    till.done["retry"] = first
    return first


def declined_then_good(till: Till) -> dict[str, Any]:
    """The gateway declines the card (an amount ending in 51); the customer pays with another card."""
    till.echo("declined card, then a good one")
    order = till.terminal.ring_up(till.items(2, 2))
    billed = till.terminal.bill(order["id"])
    declined_amount = (billed["total_amount"] // 100 - 1) * 100 + DECLINED
    declined = till.terminal.pay(billed["id"], declined_amount, "card")
    declined = till.terminal.wait_for(declined["id"], "failed")
    good = till.terminal.wait_for(till.terminal.pay(billed["id"], billed["total_amount"], "card")["id"], "succeeded")
    till.done["declined"] = {"declined": declined, "good": good}
    return good


def refunds(till: Till) -> list[dict[str, Any]]:
    """Part of the card sale back to the card, then the rest: a partial and a full refund, each settled by the
    gateway's webhook."""
    payment = till.done.get("card_payment") or card_sale(till)
    part = till.products[0]["unit_price"]
    till.echo(f"refund {part} of the card sale, then the rest")
    first = till.terminal.refund(payment["id"], part, reason="customer returned one item")
    rest = till.terminal.refund(payment["id"], payment["amount"] - part, reason="customer returned the rest")
    refunded = _wait_refunded(till, payment["id"], payment["amount"])
    till.done["refunds"] = [first, rest]
    return [first, rest, refunded]


def _wait_refunded(till: Till, payment_id: str, amount: int, timeout: float = 30.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        payment = till.terminal.payment(payment_id)
        if payment.get("refunded_amount") == amount:
            return payment
        if time.monotonic() > deadline:
            raise RuntimeError(f"payment {payment_id}: refunded {payment.get('refunded_amount')} of {amount}")
        time.sleep(0.1)


def walk_pos_core(till: Till, office: BackOffice, store_id: str, echo: Echo, *, days: int = 2) -> dict[str, Any]:
    """Every case of pos-core-v1, in a business day frozen by a test clock, then `days` days later: the token
    renewed, a shift with card, cash, split tender, a declined card, refunds, a void, an idempotent retry and offline
    sales forwarded and resent, the shift closed, and the overnight run sealing the day and applying a credit
    programme."""
    terminal = till.terminal
    clock = office.test_clock(datetime.now().astimezone())
    echo(f"test clock {clock['id']} frozen at {clock['frozen_time']}")
    try:
        office.credit_programme(store_id)
        terminal.sign_in()
        terminal.renew()
        open_shift(till)
        card_sale(till)
        cash_sale(till)
        split_tender(till)
        declined_then_good(till)
        refunds(till)
        void(till)
        idempotent_retry(till)
        offline(till)
        close_shift(till)
        frozen = datetime.fromisoformat(str(clock["frozen_time"]).replace("Z", "+00:00"))
        echo(f"advance the test clock {days} days: the overnight run seals the day and applies the programme")
        clock = office.advance(clock["id"], frozen + timedelta(days=days))
    finally:
        office.delete_clock(clock["id"])
    return till.done
