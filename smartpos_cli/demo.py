"""`smartpos demo`: a whole checkout against a running platform (`make run`), over the public HTTP API only.

An operator (the platform admin client) creates a merchant, a store and a product; a terminal registers its
EC P-256 key, signs in with a `private_key_jwt` assertion, rings up an order, bills it and pays by card; the
mock gateway's signed webhook completes the order; then one cup is refunded to the card, settled by the gateway's
signed refund webhook; a sale taken offline is forwarded (twice: the second time a duplicate), and a pending card
payment is voided. Every request is printed with the key fields of its answer,
so the output doubles as a walkthrough of the API.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from smartpos_terminal.device import ASSERTION_TYPE, DeviceKey

# device-auth learns stores from the portal's `store.created` events, so a store created a moment ago may be
# unknown to it (404) for up to about a second.
DEVICE_REGISTRATION_WAIT = 10.0
ORDER_COMPLETION_WAIT = 30.0

Echo = Callable[[str], None]


class DemoError(RuntimeError):
    """A step answered something else than the API promises; the message says which and what came back."""


def load_admin_credentials(path: Path) -> dict[str, str]:
    data = json.loads(path.read_text())
    if not isinstance(data, dict) or not data.get("client_id") or not data.get("client_secret"):
        raise DemoError(f"{path} does not hold {{'client_id', 'client_secret'}}")
    return {"client_id": str(data["client_id"]), "client_secret": str(data["client_secret"])}


def _fields(body: dict[str, Any], *names: str) -> str:
    return " ".join(f"{name}={body[name]}" for name in names if name in body)


def _expect(response: httpx.Response, status: int, what: str) -> dict[str, Any]:
    if response.status_code != status:
        raise DemoError(
            f"{what}: expected {status}, got {response.status_code} from "
            f"{response.request.method} {response.request.url}: {response.text[:500]}"
        )
    body: dict[str, Any] = response.json()
    return body


def register_device(
    client: httpx.Client,
    auth_url: str,
    headers: dict[str, str],
    body: dict[str, Any],
    echo: Echo,
    *,
    wait: float = DEVICE_REGISTRATION_WAIT,
    interval: float = 0.25,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, Any]:
    """POST /devices, retried on 404 for up to `wait` seconds: the store may not have reached device-auth yet."""
    deadline = clock() + wait
    tries = 0
    while True:
        tries += 1
        response = client.post(f"{auth_url}/devices", json=body, headers=headers)
        if response.status_code != 404 or clock() >= deadline:
            break
        if tries == 1:
            echo(f"  ← 404 (device-auth does not know store {body['store_id']} yet); retrying for up to {wait:.0f} s")
        sleep(interval)
    device = _expect(response, 201, "register the device")
    if tries > 1:
        echo(f"  (registered after {tries} tries)")
    return device


def run_demo(
    portal_url: str,
    auth_url: str,
    credentials: dict[str, str],
    echo: Echo,
    *,
    transport: httpx.BaseTransport | None = None,
    completion_wait: float = ORDER_COMPLETION_WAIT,
) -> dict[str, Any]:
    """The checkout, step by step; returns the ids it created. Raises DemoError when a step goes wrong."""
    portal_url, auth_url = portal_url.rstrip("/"), auth_url.rstrip("/")
    with httpx.Client(timeout=10, transport=transport) as client:
        echo(f"→ GET  {auth_url}/.well-known/oauth-authorization-server")
        metadata = _expect(client.get(f"{auth_url}/.well-known/oauth-authorization-server"), 200, "read metadata")
        issuer = str(metadata["issuer"])
        echo(f"  ← 200 issuer={issuer} token_endpoint={metadata.get('token_endpoint')}")

        echo(f"→ POST {auth_url}/oauth/token  grant_type=client_credentials, HTTP Basic {credentials['client_id']}")
        admin_token = _expect(
            client.post(
                f"{auth_url}/oauth/token",
                data={"grant_type": "client_credentials"},
                auth=(credentials["client_id"], credentials["client_secret"]),
            ),
            200,
            "admin token",
        )
        echo(f"  ← 200 {_fields(admin_token, 'token_type', 'expires_in', 'scope')} (the admin's access token)")
        as_admin = {"Authorization": f"Bearer {admin_token['access_token']}"}

        def post(url: str, body: dict[str, Any], headers: dict[str, str], what: str, *shown: str) -> dict[str, Any]:
            echo(f"→ POST {url}  {json.dumps(body)}")
            answer = _expect(client.post(url, json=body, headers=headers), 201, what)
            echo(f"  ← 201 {_fields(answer, *shown)}")
            return answer

        merchant = post(
            f"{portal_url}/merchants", {"name": "Kissa", "currency": "JPY"}, as_admin, "create a merchant", "id", "name"
        )
        store = post(
            f"{portal_url}/stores",
            {"name": "Shibuya", "merchant_id": merchant["id"]},
            as_admin,
            "create a store",
            "id",
            "merchant_id",
            "name",
        )
        product = post(
            f"{portal_url}/products",
            {"name": "coffee", "unit_price": 450, "merchant_id": merchant["id"]},
            as_admin,
            "create a product",
            "id",
            "name",
            "unit_price",
            "currency",
        )

        key = DeviceKey.generate("demo-" + uuid.uuid4().hex[:8])
        echo(f"  (the terminal generates an EC P-256 key pair, kid={key.kid}; only the public JWK leaves it)")
        registration = {
            "merchant_id": merchant["id"],
            "store_id": store["id"],
            "name": "till 1",
            "jwks": {"keys": [key.public_jwk]},
        }
        echo(f"→ POST {auth_url}/devices  {{merchant_id, store_id, name: 'till 1', jwks: {{keys: [public JWK]}}}}")
        device = register_device(client, auth_url, as_admin, registration, echo)
        echo(f"  ← 201 {_fields(device, 'id', 'client_id', 'store_id', 'status')}")

        echo(
            f"→ POST {auth_url}/oauth/token  grant_type=client_credentials, private_key_jwt assertion "
            f"(ES256, iss=sub={device['id']}, aud={issuer}, 30 s, unique jti)"
        )
        form = {
            "grant_type": "client_credentials",
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": key.assertion(device["id"], issuer),
        }
        device_token = _expect(client.post(f"{auth_url}/oauth/token", data=form), 200, "device token")
        echo(f"  ← 200 {_fields(device_token, 'token_type', 'expires_in', 'scope')} (the terminal's access token)")
        as_device = {"Authorization": f"Bearer {device_token['access_token']}"}

        order = post(
            f"{portal_url}/orders",
            {"items": [{"product_id": product["id"], "quantity": 2}]},
            as_device,
            "create an order",
            "id",
            "status",
            "total_amount",
            "currency",
        )
        bill = post(
            f"{portal_url}/bills",
            {"order_id": order["id"]},
            as_device,
            "bill the order",
            "id",
            "status",
            "total_amount",
        )
        idempotency_key = f"demo-{uuid.uuid4().hex}"
        payment_body = {"bill_id": bill["id"], "amount": bill["total_amount"], "method": "card"}
        echo(f"→ POST {portal_url}/payments  Idempotency-Key: {idempotency_key}  {json.dumps(payment_body)}")
        payment = _expect(
            client.post(
                f"{portal_url}/payments", json=payment_body, headers={**as_device, "Idempotency-Key": idempotency_key}
            ),
            201,
            "pay by card",
        )
        echo(f"  ← 201 {_fields(payment, 'id', 'status', 'amount', 'method', 'pgw_reference')}")

        echo(f"→ GET  {portal_url}/orders/{order['id']}  (until the gateway's webhook completes it)")
        deadline = time.monotonic() + completion_wait
        status = None
        while True:
            current = _expect(client.get(f"{portal_url}/orders/{order['id']}", headers=as_device), 200, "read order")
            if current["status"] != status:
                status = current["status"]
                echo(f"  ← 200 {_fields(current, 'status', 'version', 'total_amount')}")
            if status == "completed":
                break
            if time.monotonic() >= deadline:
                raise DemoError(f"order {order['id']} is still {status} after {completion_wait:.0f} s")
            time.sleep(0.2)
        paid = _expect(client.get(f"{portal_url}/bills/{bill['id']}", headers=as_device), 200, "read bill")
        echo(f"→ GET  {portal_url}/bills/{bill['id']}")
        echo(f"  ← 200 {_fields(paid, 'status', 'paid_amount', 'paid_at')}")

        # One cup goes back: a partial refund to the same card, settled by the gateway's refund webhook.
        refund_key = f"demo-{uuid.uuid4().hex}"
        refund_body = {"payment_id": payment["id"], "amount": product["unit_price"], "reason": "one cup spilled"}
        echo(f"→ POST {portal_url}/refunds  Idempotency-Key: {refund_key}  {json.dumps(refund_body)}")
        refund = _expect(
            client.post(
                f"{portal_url}/refunds", json=refund_body, headers={**as_device, "Idempotency-Key": refund_key}
            ),
            201,
            "refund one cup",
        )
        echo(f"  ← 201 {_fields(refund, 'id', 'status', 'amount', 'method')}")
        echo(f"→ GET  {portal_url}/refunds/{refund['id']}  (until the gateway's refund webhook settles it)")
        while refund["status"] == "pending":
            if time.monotonic() >= deadline + completion_wait:
                raise DemoError(f"refund {refund['id']} is still pending after {completion_wait:.0f} s")
            time.sleep(0.2)
            refund = _expect(client.get(f"{portal_url}/refunds/{refund['id']}", headers=as_device), 200, "read refund")
        echo(f"  ← 200 {_fields(refund, 'status', 'amount')}")
        net = _expect(client.get(f"{portal_url}/orders/{order['id']}", headers=as_device), 200, "read order")
        echo(f"→ GET  {portal_url}/orders/{order['id']}")
        echo(f"  ← 200 {_fields(net, 'status', 'total_amount', 'refunded_amount')}")

        # The shop lost its connection for a while: the terminal forwards what it rang up offline, twice (as a
        # terminal reconnecting would); the second time everything is a duplicate.
        offline_entry = {
            "client_order_id": f"demo-till1-{uuid.uuid4().hex[:12]}",
            "taken_at": datetime.now(UTC).isoformat(),
            "items": [{"product_id": product["id"], "quantity": 1}],
            "payments": [{"client_payment_id": f"demo-till1-{uuid.uuid4().hex[:12]}", "method": "cash", "amount": 450}],
        }
        for attempt in ("", " again"):
            echo(f"→ POST {portal_url}/sync{attempt}  {{orders: [one order taken offline, paid 450 in cash]}}")
            synced = _expect(
                client.post(f"{portal_url}/sync", json={"orders": [offline_entry]}, headers=as_device), 200, "sync"
            )
            (result,) = synced["results"]
            echo(f"  ← 200 {_fields(result, 'client_order_id', 'status', 'order_id', 'reason')}")

        # A card payment voided before the gateway confirms it (if the gateway was faster, the void is refused).
        second = _expect(
            client.post(
                f"{portal_url}/orders",
                json={"items": [{"product_id": product["id"], "quantity": 1}]},
                headers=as_device,
            ),
            201,
            "second order",
        )
        second_bill = _expect(
            client.post(f"{portal_url}/bills", json={"order_id": second["id"]}, headers=as_device), 201, "second bill"
        )
        pending = _expect(
            client.post(
                f"{portal_url}/payments",
                json={"bill_id": second_bill["id"], "amount": second_bill["total_amount"], "method": "card"},
                headers=as_device,
            ),
            201,
            "second card payment",
        )
        echo(f"→ POST {portal_url}/payments/{pending['id']}/void")
        voided = client.post(f"{portal_url}/payments/{pending['id']}/void", headers=as_device)
        if voided.status_code == 200:
            echo(f"  ← 200 {_fields(voided.json(), 'id', 'status')} (the gateway is told; the bill can be paid again)")
        elif voided.status_code == 409:
            echo("  ← 409 payment_not_voidable (the gateway confirmed it first: refund it instead)")
        else:
            raise DemoError(f"void: HTTP {voided.status_code}: {voided.text[:300]}")
        echo(
            f"checkout complete: order {order['id']} completed, bill {bill['id']} {paid['status']},"
            f" refund {refund['id']} {refund['status']} ({refund['amount']} back to the card)"
        )
        return {
            "merchant_id": merchant["id"],
            "store_id": store["id"],
            "product_id": product["id"],
            "device_id": device["id"],
            "order_id": order["id"],
            "bill_id": bill["id"],
            "payment_id": payment["id"],
            "refund_id": refund["id"],
        }
