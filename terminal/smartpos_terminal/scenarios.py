"""Scripted scenarios: what a till does in a day, one readable function each. Partners can run them against the
sandbox (`smartpos terminal run NAME`, `smartpos terminal demo` for the whole day) and read them as examples of
the API. Amounts ending in the mock gateway's test values (docs/sandbox.md) make the gateway misbehave on purpose.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from .device import DeviceFile, DeviceKey, register
from .terminal import Echo, Terminal

LATE_WEBHOOK = 61  # docs/sandbox.md: the mock gateway confirms 30 s late, time enough to void


@dataclass
class Till:
    """A terminal with what it sells and the cash its drawer took (for the blind count at close)."""

    terminal: Terminal
    products: list[dict[str, Any]]
    echo: Echo
    cash: int = 0
    shift: dict[str, Any] | None = None
    done: dict[str, Any] = field(default_factory=dict)

    def items(self, *quantities: int) -> list[tuple[str, int]]:
        return [(p["id"], q) for p, q in zip(self.products, quantities, strict=False) if q]


def card_sale(till: Till) -> dict[str, Any]:
    """Ring up, bill, pay the whole bill by card; the gateway's webhook completes the order."""
    till.echo("card sale")
    order = till.terminal.ring_up(till.items(2, 1))
    billed = till.terminal.bill(order["id"])
    payment = till.terminal.pay(billed["id"], billed["total_amount"], "card")
    payment = till.terminal.wait_for(payment["id"], "succeeded")
    till.done["card_payment"] = payment
    return payment


def cash_sale(till: Till) -> dict[str, Any]:
    """Cash is settled at once: the order completes in the same request."""
    till.echo("cash sale")
    order = till.terminal.ring_up(till.items(1))
    billed = till.terminal.bill(order["id"])
    payment = till.terminal.pay(billed["id"], billed["total_amount"], "cash")
    till.cash += payment["amount"]
    till.done["cash_payment"] = payment
    return payment


def split_tender(till: Till) -> dict[str, Any]:
    """One bill, two tenders: part by card, the rest in cash. The bill is paid when both succeeded."""
    till.echo("split tender: card, then cash for the rest")
    order = till.terminal.ring_up(till.items(1, 2))
    billed = till.terminal.bill(order["id"])
    by_card = max(100, billed["total_amount"] // 200 * 100)  # a round amount: no test value (docs/sandbox.md)
    card = till.terminal.wait_for(till.terminal.pay(billed["id"], by_card, "card")["id"], "succeeded")
    cash = till.terminal.pay(billed["id"], billed["total_amount"] - by_card, "cash")
    till.cash += cash["amount"]
    completed = till.terminal.order(order["id"])
    till.done["split"] = {"order": completed, "payments": [card, cash]}
    return completed


def refund(till: Till) -> dict[str, Any]:
    """Part of the card sale goes back to the card (the gateway settles it by webhook)."""
    payment = till.done.get("card_payment") or card_sale(till)
    till.echo("refund one item of the card sale")
    back = till.terminal.refund(payment["id"], till.products[0]["unit_price"], reason="customer returned it")
    till.done["refund"] = back
    return back


def void(till: Till) -> dict[str, Any]:
    """A card payment still pending (the gateway is slow: an amount ending in 61) is voided; cash pays instead."""
    till.echo("void a pending card payment, then pay cash")
    order = till.terminal.ring_up(till.items(3, 3))
    billed = till.terminal.bill(order["id"])
    amount = (billed["total_amount"] // 100 - 1) * 100 + LATE_WEBHOOK
    pending = till.terminal.pay(billed["id"], amount, "card")
    voided = till.terminal.void(pending["id"])
    cash = till.terminal.pay(billed["id"], billed["total_amount"], "cash")
    till.cash += cash["amount"]
    till.done["void"] = voided
    return voided


def offline(till: Till) -> list[dict[str, Any]]:
    """Two cash sales taken while the network was down, forwarded when it is back — and forwarded again by
    mistake: the second time, each is a `duplicate`, nothing is created twice."""
    till.echo("offline: two cash sales kept, forwarded, then resent")
    prices = {p["id"]: p["unit_price"] for p in till.products}
    for quantities in ((1,), (0, 2)):
        items = till.items(*quantities)
        total = sum(prices[p] * q for p, q in items)
        till.terminal.sell_offline(items, [("cash", total)])
        till.cash += total
    first = till.terminal.forward(keep=True)
    again = till.terminal.forward()
    till.echo(f"  first: {[r['status'] for r in first]}, resent: {[r['status'] for r in again]}")
    till.done["offline"] = {"first": first, "again": again}
    return first + again


def open_shift(till: Till, opening_float: int = 10_000) -> dict[str, Any]:
    till.echo(f"open the shift with a float of {opening_float}")
    till.shift = till.terminal.open_shift(opening_float)
    till.cash += opening_float
    return till.shift


def close_shift(till: Till) -> dict[str, Any]:
    """A blind close: the till counts its drawer (here: what it took in cash) without seeing the expected amount."""
    assert till.shift is not None, "open the shift first"
    till.echo(f"close the shift: counted {till.cash}")
    closed = till.terminal.close_shift(till.shift["id"], till.cash)
    till.done["shift"] = closed
    return closed


def a_day(till: Till) -> dict[str, Any]:
    """The whole day: open the drawer, sell by card, cash and split tender, refund, void, work offline and forward,
    close the drawer."""
    open_shift(till)
    card_sale(till)
    cash_sale(till)
    split_tender(till)
    refund(till)
    void(till)
    offline(till)
    close_shift(till)
    return till.done


SCENARIOS: dict[str, Callable[[Till], Any]] = {
    "day": a_day,
    "card-sale": card_sale,
    "cash-sale": cash_sale,
    "split-tender": split_tender,
    "refund": refund,
    "void": void,
    "offline": offline,
}


def set_up_demo_shop(client: httpx.Client, portal_url: str, auth_url: str, admin_token: str, echo: Echo) -> DeviceFile:
    """A merchant, a store, three products and a registered till — what `smartpos seed` gives you, in small."""
    portal_url = portal_url.rstrip("/")
    admin = {"Authorization": f"Bearer {admin_token}"}

    def create(path: str, body: dict[str, Any]) -> dict[str, Any]:
        response = client.post(f"{portal_url}{path}", json=body, headers=admin)
        if response.status_code != 201:
            raise RuntimeError(f"POST {path}: {response.status_code} {response.text[:300]}")
        created: dict[str, Any] = response.json()
        echo(f"  POST {path} -> 201 id={created['id']}")
        return created

    merchant = create("/merchants", {"name": "Kissa Demo", "currency": "JPY"})
    store = create("/stores", {"name": "Shibuya", "merchant_id": merchant["id"], "timezone": "Asia/Tokyo"})
    products = [
        create("/products", {"name": name, "unit_price": price, "merchant_id": merchant["id"]})
        for name, price in (("coffee", 450), ("croissant", 380), ("matcha latte", 560))
    ]
    key = DeviceKey.generate()
    device = register(client, auth_url, admin_token, merchant["id"], store["id"], "till 1", key)
    echo(f"  POST /devices -> 201 id={device['id']} (only the public key left the till)")
    return DeviceFile(
        device["id"],
        merchant["id"],
        store["id"],
        key.kid,
        key.pem(),
        tuple({"id": p["id"], "name": p["name"], "unit_price": p["unit_price"]} for p in products),
    )
