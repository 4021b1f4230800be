"""Events and the live hub, end to end: the portal's outbox relay publishes to JetStream; two smarttab
processes (uvicorn) consume it and serve WebSocket feeds and live store views."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import nats
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from tests.portal.helpers import bill, ring_up
from tests.support.auth_fixtures import ISSUER
from tests.support.environment import nats_url
from tests.support.portal_fixtures import MakeTenant, Tenant
from tests.support.processes import ServiceProcess

# The NATS the services under test use (the configured one, e.g. docker-compose.test.yml's on 4223).


@pytest.fixture(scope="module")
def hubs(service_env: dict[str, str]) -> Iterator[list[ServiceProcess]]:
    """Two smarttab processes trusting the test issuer; keys come from a device-auth process on the same database."""
    auth = ServiceProcess("device-auth", service_env).start()
    env = {
        **service_env,
        "SMARTPOS_AUTH_ISSUER": ISSUER,
        "SMARTPOS_AUTH_JWKS_URL": f"{auth.url}/.well-known/jwks.json",
        "SMARTTAB_HEARTBEAT_SECONDS": "1",
    }
    procs = [ServiceProcess("smarttab", env) for _ in range(2)]
    try:
        for proc in procs:
            proc.start()
        yield procs
    finally:
        for proc in procs:
            proc.stop()
        auth.stop()


def ws_url(proc: ServiceProcess, **params: Any) -> str:
    query = "&".join(f"{k}={v}" for k, v in params.items())
    return proc.url.replace("http://", "ws://") + "/ws/orders" + (f"?{query}" if query else "")


async def next_event(ws: ClientConnection, timeout: float = 5.0) -> dict[str, Any]:
    while True:
        message = json.loads(await asyncio.wait_for(ws.recv(), timeout))
        if message["type"] != "heartbeat":
            return message  # type: ignore[no-any-return]


async def no_event(ws: ClientConnection, within: float = 1.0) -> bool:
    try:
        await next_event(ws, within)
    except TimeoutError:
        return True
    return False


@pytest.fixture
async def feed(hubs: list[ServiceProcess]) -> AsyncIterator[Any]:
    opened: list[ClientConnection] = []

    async def open_feed(token: str, hub: int = 0, header: bool = True, **params: Any) -> ClientConnection:
        if header:
            ws = await connect(ws_url(hubs[hub], **params), additional_headers={"Authorization": f"Bearer {token}"})
        else:
            ws = await connect(ws_url(hubs[hub], access_token=token, **params))
        opened.append(ws)
        await asyncio.sleep(0.05)  # registered before the test acts
        return ws

    yield open_feed
    for ws in opened:
        await ws.close()


async def test_order_created_is_published_on_its_merchant_subject_within_5_seconds(
    portal: httpx.AsyncClient, tenant: Tenant
) -> None:
    nc = await nats.connect(nats_url())
    try:
        sub = await nc.subscribe(f"smartpos.{tenant.merchant_id}.order.created")
        order = await ring_up(portal, tenant)
        msg = await sub.next_msg(timeout=5)
        event = json.loads(msg.data)
        assert event["type"] == "order.created" and event["subject"] == order["id"]
        assert event["data"]["id"] == order["id"] and event["version"] == 1
        assert event["merchant_id"] == tenant.merchant_id and event["store_id"] == tenant.store_id
        assert msg.headers and msg.headers["Nats-Msg-Id"] == event["id"]
        assert {"id", "type", "source", "time", "merchant_id", "store_id", "subject", "version", "data"} <= event.keys()
    finally:
        await nc.close()


async def test_a_dashboard_sees_its_order_completed_and_nobody_else_does(
    portal: httpx.AsyncClient, make_tenant: MakeTenant, feed: Any
) -> None:
    a, b = await make_tenant(), await make_tenant()
    ws_a = await feed(a.merchant_token)
    ws_b = await feed(b.merchant_token, header=False)  # query-parameter token, as browsers do
    order = await ring_up(portal, a)
    created = await next_event(ws_a)
    assert (created["type"], created["orderId"], created["status"]) == ("order.created", order["id"], "open")
    b_bill = await bill(portal, a, order["id"])
    await portal.post(
        "/payments",
        json={"bill_id": b_bill["id"], "amount": order["total_amount"], "method": "cash"},
        headers=a.as_device,
    )
    updated = await next_event(ws_a)
    assert (updated["type"], updated["orderId"], updated["status"]) == ("order.updated", order["id"], "completed")
    assert updated["seq"] > created["seq"] and updated["version"] == 2
    assert (
        updated["merchantId"] == a.merchant_id
        and updated["storeId"] == a.store_id
        and updated["order"]["id"] == order["id"]
    )
    assert await no_event(ws_b)


async def test_a_device_socket_sees_only_its_store(portal: httpx.AsyncClient, tenant: Tenant, feed: Any) -> None:
    ws = await feed(tenant.device_token)
    items = [{"product_id": tenant.products[0]["id"], "quantity": 1}]
    other = await portal.post(
        "/orders", json={"store_id": tenant.other_store_id, "items": items}, headers=tenant.as_merchant
    )
    mine = await ring_up(portal, tenant)
    assert other.status_code == 201
    assert (await next_event(ws))["orderId"] == mine["id"]
    assert await no_event(ws, 0.5)


@pytest.mark.parametrize("token", ["", "not-a-jwt", "eyJhbGciOiJub25lIn0.e30."])
async def test_a_socket_without_a_valid_token_gets_no_data(hubs: list[ServiceProcess], token: str) -> None:
    url = ws_url(hubs[0], **({"access_token": token} if token else {}))
    async with connect(url) as ws:
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 5)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401


async def test_a_device_cannot_follow_another_store(hubs: list[ServiceProcess], tenant: Tenant) -> None:
    url = ws_url(hubs[0], store_id=tenant.other_store_id)
    async with connect(url, additional_headers={"Authorization": f"Bearer {tenant.device_token}"}) as ws:
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 5)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4403


async def test_resume_with_since_replays_exactly_what_was_missed_then_continues_live(
    portal: httpx.AsyncClient, tenant: Tenant, feed: Any
) -> None:
    ws = await feed(tenant.merchant_token)
    await ring_up(portal, tenant)
    last_seen = (await next_event(ws))["seq"]
    await ws.close()
    missed = [(await ring_up(portal, tenant))["id"] for _ in range(3)]
    await asyncio.sleep(0.5)  # published while the dashboard was away
    resumed = await feed(tenant.merchant_token, since=last_seen)
    replayed = [await next_event(resumed) for _ in range(3)]
    assert [m["orderId"] for m in replayed] == missed
    assert all(m["seq"] > last_seen for m in replayed) and [m["seq"] for m in replayed] == sorted(
        m["seq"] for m in replayed
    )
    assert await no_event(resumed, 0.5)  # no duplicate
    live = await ring_up(portal, tenant)
    after = await next_event(resumed)
    assert after["orderId"] == live["id"] and after["seq"] > replayed[-1]["seq"]


async def test_two_hub_processes_both_deliver(portal: httpx.AsyncClient, tenant: Tenant, feed: Any) -> None:
    first, second = await feed(tenant.merchant_token, hub=0), await feed(tenant.merchant_token, hub=1)
    order = await ring_up(portal, tenant)
    got = await asyncio.gather(next_event(first), next_event(second))
    assert [m["orderId"] for m in got] == [order["id"], order["id"]]
    assert got[0]["seq"] == got[1]["seq"]


async def test_live_store_view_is_built_from_events(
    portal: httpx.AsyncClient, hubs: list[ServiceProcess], tenant: Tenant
) -> None:
    open_order = await ring_up(portal, tenant)
    paid_order = await ring_up(portal, tenant)
    b = await bill(portal, tenant, paid_order["id"])
    await portal.post(
        "/payments", json={"bill_id": b["id"], "amount": 1200, "method": "cash"}, headers=tenant.as_device
    )
    url = f"{hubs[1].url}/stores/{tenant.store_id}/live"
    for _ in range(50):
        # Eventually consistent (within a second): until the hub has projected the store's first event, the store
        # is unknown to it (404).
        response = httpx.get(url, headers=tenant.as_merchant)
        view = response.json()
        if response.status_code == 200 and view["today"]["completed"] == 1 and len(view["open_orders"]) == 1:
            break
        await asyncio.sleep(0.1)
    assert response.status_code == 200, view
    assert [o["id"] for o in view["open_orders"]] == [open_order["id"]]
    assert view["today"] == {"orders": 2, "completed": 1, "revenue": 1200}
    # A refund reaches the view through order.updated: today's revenue is net of it.
    payment = (await portal.get(f"/payments?bill_id={b['id']}", headers=tenant.as_device)).json()["items"][0]
    refund = await portal.post(
        "/refunds",
        json={"payment_id": payment["id"], "amount": 450},
        headers={**tenant.as_device, "Idempotency-Key": f"live-{payment['id']}"},
    )
    assert refund.status_code == 201, refund.text
    for _ in range(50):
        view = httpx.get(url, headers=tenant.as_merchant).json()
        if view["today"]["revenue"] != 1200:
            break
        await asyncio.sleep(0.1)
    assert view["today"] == {"orders": 2, "completed": 1, "revenue": 750}
    assert httpx.get(url, headers=tenant.as_device).status_code == 200
    assert httpx.get(f"{hubs[1].url}/stores/{tenant.other_store_id}/live", headers=tenant.as_device).status_code == 404
    assert httpx.get(url).status_code == 401


async def test_another_merchant_cannot_read_a_live_store(
    portal: httpx.AsyncClient, hubs: list[ServiceProcess], make_tenant: MakeTenant
) -> None:
    a, b = await make_tenant(), await make_tenant()
    await ring_up(portal, a)
    url = f"{hubs[0].url}/stores/{a.store_id}/live"
    for _ in range(50):
        if httpx.get(url, headers=a.as_merchant).json()["open_orders"]:
            break
        await asyncio.sleep(0.1)
    assert httpx.get(url, headers=b.as_merchant).status_code == 404


async def test_a_poison_event_is_dead_lettered_after_bounded_redelivery(
    hubs: list[ServiceProcess], databases: dict[str, Any]
) -> None:
    import asyncpg

    from smartpos_shared.events import ensure_stream
    from smartpos_shared.ids import new_id

    event_id = new_id("evt")
    nc = await nats.connect(nats_url())
    try:
        js = await ensure_stream(nc)
        poison = {
            "id": event_id,
            "type": "order.created",
            "merchant_id": new_id("mer"),
            "version": 1,
            "data": {"id": "x"},
        }
        await js.publish(
            f"smartpos.{poison['merchant_id']}.order.created",
            json.dumps(poison).encode(),
            headers={"Nats-Msg-Id": event_id},
        )
    finally:
        await nc.close()
    conn = await asyncpg.connect(databases["smarttab"].dsn)
    try:
        for _ in range(150):
            row = await conn.fetchrow("SELECT deliveries, error FROM dead_letters WHERE event_id = $1", event_id)
            if row is not None:
                break
            await asyncio.sleep(0.1)
        assert row is not None, "not dead-lettered"
        assert row["deliveries"] == 5 and "KeyError" in row["error"]
    finally:
        await conn.close()


async def test_an_idle_socket_gets_heartbeats(tenant: Tenant, feed: Any) -> None:
    ws = await feed(tenant.merchant_token)
    message = json.loads(await asyncio.wait_for(ws.recv(), 5))
    assert message == {"type": "heartbeat"}


async def test_a_query_string_token_never_reaches_the_log(hubs: list[ServiceProcess], tenant: Tenant) -> None:
    """uvicorn prints the handshake's path with its query string; browsers put the token there."""
    async with connect(ws_url(hubs[0], access_token=tenant.merchant_token)) as ws:
        await asyncio.wait_for(ws.recv(), 5)  # a heartbeat: the socket was accepted with the query token
    await asyncio.sleep(0.2)
    log = hubs[0].output()
    assert "/ws/orders?access_token=[redacted]" in log  # the line is still there, without its secret
    assert tenant.merchant_token not in log
    assert tenant.merchant_token.split(".")[2] not in log  # not even the signature part


async def test_a_live_view_is_404_for_unknown_and_foreign_stores_with_or_without_orders(
    portal: httpx.AsyncClient, hubs: list[ServiceProcess], make_tenant: MakeTenant
) -> None:
    """No existence oracle: the answer to another tenant is the answer for a store that does not exist."""
    from smartpos_shared.ids import new_id

    a, b = await make_tenant(), await make_tenant()

    def live(store_id: str, headers: dict[str, str]) -> httpx.Response:
        return httpx.get(f"{hubs[0].url}/stores/{store_id}/live", headers=headers)

    for _ in range(50):  # smarttab learns the store from its store.created event
        own = live(a.store_id, a.as_merchant)
        if own.status_code == 200:
            break
        await asyncio.sleep(0.1)
    assert own.status_code == 200, own.text
    assert own.json() == {
        "store_id": a.store_id,
        "open_orders": [],
        "today": {"orders": 0, "completed": 0, "revenue": 0},
    }
    assert live(a.store_id, b.as_merchant).status_code == 404  # foreign, no orders yet
    assert live(a.store_id, b.as_device).status_code == 404
    assert live(new_id("sto"), a.as_merchant).status_code == 404  # does not exist
    await ring_up(portal, a)
    await asyncio.sleep(0.5)
    assert live(a.store_id, b.as_merchant).status_code == 404  # foreign, with orders: the same answer
