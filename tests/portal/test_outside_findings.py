"""Defects a hostile client found from outside (issue 10), each pinned by the request that found it."""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from portal.pgw.signature import sign
from tests.portal.helpers import bill, pay, ring_up, webhook
from tests.support.portal_fixtures import WEBHOOK_SECRET, Tenant, bearer, signed_webhook

NUL = "\u0000"


async def _signed_raw(portal: httpx.AsyncClient, body: bytes) -> httpx.Response:
    headers = {"content-type": "application/json", "PGW-Signature": sign(WEBHOOK_SECRET, int(time.time()), body)}
    return await portal.post("/webhooks/pgw", content=body, headers=headers)


@pytest.mark.parametrize(
    "signature",
    [
        pytest.param("t=" + "9" * 400 + ",v1=00", id="timestamp-400-digits"),
        pytest.param(f"t={int(time.time())},v1=" + "é" * 64, id="non-ascii-v1"),
        pytest.param(f"t={int(time.time())},v1=\xff\xfe", id="non-ascii-bytes"),
        pytest.param("t=-5,v1=" + "0" * 64, id="negative-timestamp"),
        pytest.param("t=1e9,v1=" + "0" * 64, id="float-timestamp"),
    ],
)
async def test_malformed_webhook_signatures_are_400_not_500(portal: httpx.AsyncClient, signature: str) -> None:
    body = json.dumps({"id": "evt_x", "type": "payment.succeeded", "data": {"pgw_reference": "r", "amount": 1}})
    response = await portal.post(
        "/webhooks/pgw",
        content=body.encode(),
        headers=[(b"content-type", b"application/json"), (b"pgw-signature", signature.encode("latin-1"))],
    )
    assert response.status_code == 400, response.text
    assert response.json()["type"].endswith("/bad_signature")


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"[" * 3000 + b"]" * 3000, id="nested-3000-deep-array"),
        pytest.param(
            b'{"id": "evt_deep", "type": "payment.succeeded", "data": {"pgw_reference": "r", "amount": 1, "x": '
            + b'{"a":' * 3000
            + b"1"
            + b"}" * 3000
            + b"}}",
            id="nested-3000-deep-extra-field",
        ),
        pytest.param(
            json.dumps(
                {"id": f"evt_{NUL}", "type": "payment.succeeded", "data": {"pgw_reference": "r", "amount": 1}}
            ).encode(),
            id="nul-in-event-id",
        ),
        pytest.param(
            json.dumps(
                {"id": "evt_n", "type": "payment.succeeded", "data": {"pgw_reference": f"r{NUL}", "amount": 1}}
            ).encode(),
            id="nul-in-reference",
        ),
        pytest.param(
            json.dumps(
                {"id": "evt_n", "type": "payment.succeeded", "data": {"pgw_reference": "r", "amount": 1, "note": NUL}}
            ).encode(),
            id="nul-in-extra-field",
        ),
    ],
)
async def test_signed_but_hostile_webhook_bodies_are_400(portal: httpx.AsyncClient, body: bytes) -> None:
    response = await _signed_raw(portal, body)
    assert response.status_code == 400, response.text
    assert response.json()["type"].endswith("/malformed_event")


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/stores", {"name": f"Shi{NUL}buya"}),
        ("/products", {"name": f"tea{NUL}", "unit_price": 100}),
        ("/products", {"name": "tea", "unit_price": 100, "sku": f"S{NUL}1"}),
        ("/orders", {"items": [{"product_id": f"prd_{NUL}", "quantity": 1}]}),
        ("/stores", {f"na{NUL}me": "x"}),
    ],
)
async def test_nul_in_any_stored_string_is_422(
    portal: httpx.AsyncClient, tenant: Tenant, path: str, body: dict[str, object]
) -> None:
    response = await portal.post(path, json=body, headers=tenant.as_merchant)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"


async def test_nul_in_a_merchant_name_is_422(portal: httpx.AsyncClient, admin_token: str) -> None:
    response = await portal.post("/merchants", json={"name": f"K{NUL}", "currency": "JPY"}, headers=bearer(admin_token))
    assert response.status_code == 422, response.text


@pytest.mark.parametrize(
    "raw", [f"ord_{NUL}", "ord_" + NUL * 26, f"ord_01ARZ3NDEKTSV4RRFFQ69G5FA{NUL}", "ord_x' OR 1=1"]
)
async def test_hostile_pagination_cursors_are_422(portal: httpx.AsyncClient, tenant: Tenant, raw: str) -> None:
    cursor = base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")
    response = await portal.get("/orders", params={"cursor": cursor}, headers=tenant.as_merchant)
    assert response.status_code == 422, response.text


async def _chunks(payload: bytes, size: int = 8192) -> AsyncIterator[bytes]:
    for start in range(0, len(payload), size):
        yield payload[start : start + size]


@pytest.mark.parametrize("path", ["/orders", "/webhooks/pgw"])
async def test_chunked_bodies_over_64_kib_are_413(portal: httpx.AsyncClient, tenant: Tenant, path: str) -> None:
    payload = b'{"items": "' + b"x" * (70 * 1024) + b'"}'
    response = await portal.post(
        path,
        content=_chunks(payload),  # no Content-Length: the limit is found while reading
        headers={**tenant.as_merchant, "content-type": "application/json"},
    )
    assert response.status_code == 413, response.text
    assert response.json()["type"].endswith("/payload_too_large")


async def test_an_order_completed_by_hand_takes_no_more_payments(portal: httpx.AsyncClient, tenant: Tenant) -> None:
    """Completed by hand (settled outside) with a partially paid bill: the remainder must not be collectable."""
    order = await ring_up(portal, tenant)
    b = await bill(portal, tenant, order["id"])
    assert (await pay(portal, tenant, b["id"], 200, "cash")).status_code == 201
    done = await portal.patch(f"/orders/{order['id']}", json={"status": "completed"}, headers=tenant.as_device)
    assert done.status_code == 200 and done.json()["status"] == "completed"
    late = await pay(portal, tenant, b["id"], 100, "cash")
    assert late.status_code == 409, late.text
    assert late.json()["type"].endswith("/bill_not_payable")
    after = (await portal.get(f"/bills/{b['id']}", headers=tenant.as_device)).json()
    assert after["paid_amount"] == 200


async def test_a_replayed_amount_mismatch_webhook_answers_200_as_documented(
    portal: httpx.AsyncClient, tenant: Tenant
) -> None:
    order = await ring_up(portal, tenant)
    b = await bill(portal, tenant, order["id"])
    payment = (await pay(portal, tenant, b["id"], order["total_amount"])).json()
    event_id = f"evt_{uuid.uuid4().hex}"
    first = await webhook(portal, event_id, payment["pgw_reference"], order["total_amount"] + 1)
    assert first.status_code == 422  # the first answer reports the mismatch
    again = await webhook(portal, event_id, payment["pgw_reference"], order["total_amount"] + 1)
    assert again.status_code == 200, again.text  # an event id seen before: 200, no change
    assert again.json()["outcome"] == "duplicate"
    assert (await portal.get(f"/payments/{payment['id']}", headers=tenant.as_device)).json()["status"] == "pending"


async def test_a_signed_webhook_for_an_unknown_reference_is_404_not_500(portal: httpx.AsyncClient) -> None:
    event = {"id": f"evt_{uuid.uuid4().hex}", "type": "payment.failed", "data": {"pgw_reference": "nope", "amount": 1}}
    assert (await portal.post("/webhooks/pgw", **signed_webhook(event))).status_code == 404


async def test_portal_app_fixture_is_in_manual_mode(portal_app: FastAPI) -> None:
    assert portal_app.state.settings.pgw_mode == "manual"
