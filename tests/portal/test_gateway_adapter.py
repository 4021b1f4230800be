"""The `http` gateway adapter against a fake gateway (the one thing outside the platform we may mock)."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

import httpx
import redis.asyncio as aioredis

from portal.pgw.gateway import Charge, HttpGateway, ManualGateway, MockGateway, RefundRequest, gateway_for
from portal.pgw.settlement import SettlementLedger
from portal.settings import PortalSettings
from smartpos_shared.ids import new_id
from tests.support.environment import redis_url


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


async def test_the_mock_gateway_settles_what_it_confirms_and_amounts_ending_in_93_one_unit_short() -> None:
    redis = aioredis.Redis.from_url(redis_url())
    store_id = new_id("sto")
    ledger = SettlementLedger(redis)
    # Webhooks go nowhere here (a closed port): the settlement ledger is what is checked.
    gateway = MockGateway("http://127.0.0.1:9/webhooks/pgw", "whsec_" + "x" * 32, 0.0, ledger)
    try:
        before = datetime.now(UTC) - timedelta(seconds=1)
        await gateway.charge(Charge("pgwref_ok", 1200, "JPY", "card", store_id=store_id))
        await gateway.charge(Charge("pgwref_short", 1293, "JPY", "qr", store_id=store_id))
        await gateway.refund(RefundRequest("pgwref_back", "pgwref_ok", 200, "JPY", store_id=store_id))
        await gateway.cancel("pgwref_voided")
        await gateway.charge(Charge("pgwref_voided", 500, "JPY", "card", store_id=store_id))

        async def report() -> list[tuple[str, str, int]]:
            entries = await gateway.settlement_report(store_id, before, datetime.now(UTC) + timedelta(seconds=1))
            return sorted((e.kind, e.pgw_reference, e.amount) for e in entries)

        for _ in range(100):
            if len(await report()) == 3:
                break
            await asyncio.sleep(0.02)
        assert await report() == [
            ("payment", "pgwref_ok", 1200),
            ("payment", "pgwref_short", 1292),  # the test value: settled one unit short
            ("refund", "pgwref_back", 200),
        ]  # a charge canceled before its confirmation is never settled
    finally:
        await gateway.close()
        await redis.delete(SettlementLedger.key(store_id))
        await redis.aclose()  # type: ignore[attr-defined]  # redis 5 (types-redis describes 4)


async def test_the_http_gateway_reads_its_settlement_report() -> None:
    def fake_gateway(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/settlements" and request.url.params["store_id"] == "sto_1"
        entry = {
            "kind": "payment",
            "pgw_reference": "pgwref_1",
            "amount": 700,
            "settled_at": "2026-11-23T12:00:00+00:00",
        }
        return httpx.Response(200, json={"entries": [entry]})

    gateway = HttpGateway("https://pgw.example", "pk_test_1", transport=httpx.MockTransport(fake_gateway))
    [entry] = await gateway.settlement_report(
        "sto_1", datetime(2026, 11, 23, tzinfo=UTC), datetime(2026, 11, 24, tzinfo=UTC)
    )
    assert (entry.kind, entry.pgw_reference, entry.amount) == ("payment", "pgwref_1", 700)
    await gateway.close()
