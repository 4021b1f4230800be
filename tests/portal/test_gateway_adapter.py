"""The `http` gateway adapter against a fake gateway (the one thing outside the platform we may mock)."""

from __future__ import annotations

import json

import httpx

from portal.pgw.gateway import Charge, HttpGateway, ManualGateway, MockGateway, RefundRequest, gateway_for
from portal.settings import PortalSettings


async def test_http_gateway_sends_the_charge_with_our_reference_as_idempotency_key() -> None:
    seen: list[httpx.Request] = []

    def fake_gateway(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(201, json={"status": "accepted"})

    gateway = HttpGateway("https://pgw.example", "pk_test_1", transport=httpx.MockTransport(fake_gateway))
    await gateway.charge(Charge("pgwref_1", 1200, "JPY", "card"))
    await gateway.close()
    assert len(seen) == 1
    request = seen[0]
    assert (request.method, request.url.path) == ("POST", "/charges")
    assert request.headers["authorization"] == "Bearer pk_test_1"
    assert request.headers["idempotency-key"] == "pgwref_1"
    assert json.loads(request.content) == {"reference": "pgwref_1", "amount": 1200, "currency": "JPY", "method": "card"}


async def test_http_gateway_sends_refunds_and_cancels_with_idempotency_keys() -> None:
    seen: list[httpx.Request] = []

    def fake_gateway(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(201 if request.url.path == "/refunds" else 200, json={"status": "accepted"})

    gateway = HttpGateway("https://pgw.example", "pk_test_1", transport=httpx.MockTransport(fake_gateway))
    await gateway.refund(RefundRequest("pgwref_r1", "pgwref_c1", 300, "JPY"))
    await gateway.cancel("pgwref_c2")
    await gateway.close()
    refund, cancel = seen
    assert (refund.method, refund.url.path, refund.headers["idempotency-key"]) == ("POST", "/refunds", "pgwref_r1")
    assert json.loads(refund.content) == {
        "reference": "pgwref_r1",
        "charge_reference": "pgwref_c1",
        "amount": 300,
        "currency": "JPY",
    }
    assert (cancel.method, cancel.url.path) == ("POST", "/charges/pgwref_c2/cancel")
    assert cancel.headers["idempotency-key"] == "cancel-pgwref_c2"


async def test_http_gateway_failure_leaves_the_payment_to_the_webhook() -> None:
    gateway = HttpGateway("https://pgw.example", "k", transport=httpx.MockTransport(lambda r: httpx.Response(502)))
    await gateway.charge(Charge("pgwref_2", 1, "JPY", "qr"))  # logs, does not raise: the payment stays pending
    await gateway.close()


def test_the_mode_selects_the_adapter() -> None:
    assert isinstance(gateway_for(PortalSettings(pgw_mode="manual")), ManualGateway)
    assert isinstance(gateway_for(PortalSettings(pgw_mode="mock")), MockGateway)
    assert isinstance(
        gateway_for(PortalSettings(pgw_mode="http", pgw_url="https://pgw.example", pgw_api_key="k")), HttpGateway
    )


async def test_http_gateway_forwards_an_offline_authorization_with_the_charge() -> None:
    seen: list[httpx.Request] = []

    def fake_gateway(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(201, json={"status": "accepted"})

    gateway = HttpGateway("https://pgw.example", "k", transport=httpx.MockTransport(fake_gateway))
    await gateway.charge(Charge("pgwref_3", 700, "JPY", "card", offline_auth="AUTH-778899"))
    await gateway.close()
    assert json.loads(seen[0].content)["offline_auth"] == "AUTH-778899"
