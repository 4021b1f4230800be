"""Feed benchmark: commit-to-socket latency with 1,000 dashboard sockets, and events/s through the outbox relay.

    BENCH_SECONDS=30 BENCH_SOCKETS=1000 BENCH_MERCHANTS=20 scripts/uv run python bench/feed.py

Starts device-auth, portal and smarttab as production does (uvicorn, uvloop, httptools, no access log) against
the development databases (`make migrate` first). Sockets are spread evenly over the merchants; order creators
(BENCH_WRITERS, default 8) ring up orders for the whole run. Latency is measured from the order's `created_at`
(taken inside the creating transaction, before its commit: a conservative start) to the moment each socket
receives the event. Every socket must get every event of its merchant and nothing else.

The relay figure: BENCH_RELAY_EVENTS (default 20,000) outbox rows are committed at once and the portal's relay
publishes them to JetStream; events/s is rows ÷ time until all are marked published.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections import defaultdict
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import CpuMeter, Server, percentiles, save, table
from bench.run import Socket, listen
from device_auth.clients.bootstrap import bootstrap

SECONDS = float(os.environ.get("BENCH_SECONDS", "30"))
SOCKETS = int(os.environ.get("BENCH_SOCKETS", "1000"))
MERCHANTS = int(os.environ.get("BENCH_MERCHANTS", "20"))
WRITERS = int(os.environ.get("BENCH_WRITERS", "8"))
RELAY_EVENTS = int(os.environ.get("BENCH_RELAY_EVENTS", "20000"))


async def _json(session: aiohttp.ClientSession, method: str, url: str, **kwargs: Any) -> Any:
    async with session.request(method, url, **kwargs) as response:
        body = await response.json()
        if response.status >= 300:
            raise RuntimeError(f"{method} {url}: {response.status} {body}")
        return body


async def _setup_merchants(http: aiohttp.ClientSession, auth: str, portal: str) -> list[dict[str, str]]:
    admin = await bootstrap()
    admin_token = (
        await _json(
            http, "POST", f"{auth}/oauth/token", data={"grant_type": "client_credentials"},
            auth=aiohttp.BasicAuth(admin["client_id"], admin["client_secret"]),
        )
    )["access_token"]  # fmt: skip
    as_admin = {"Authorization": f"Bearer {admin_token}"}
    merchants = []
    for i in range(MERCHANTS):
        merchant = await _json(
            http, "POST", f"{portal}/merchants", json={"name": f"bench {i}", "currency": "JPY"}, headers=as_admin
        )
        client = await _json(
            http, "POST", f"{auth}/clients", json={"merchant_id": merchant["id"], "name": "bench"}, headers=as_admin
        )
        token = (
            await _json(
                http, "POST", f"{auth}/oauth/token", data={"grant_type": "client_credentials"},
                auth=aiohttp.BasicAuth(client["client_id"], client["client_secret"]),
            )
        )["access_token"]  # fmt: skip
        headers = {"Authorization": f"Bearer {token}"}
        store = await _json(http, "POST", f"{portal}/stores", json={"name": "main"}, headers=headers)
        product = await _json(
            http, "POST", f"{portal}/products", json={"name": "coffee", "unit_price": 450}, headers=headers
        )
        merchants.append({"id": merchant["id"], "token": token, "store": store["id"], "product": product["id"]})
    return merchants


async def feed_benchmark(auth: str, portal: str, hub: str) -> dict[str, Any]:
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
        merchants = await _setup_merchants(http, auth, portal)
        sockets: list[Socket] = []
        connections = []
        listeners = []
        for i in range(SOCKETS):
            merchant = merchants[i % MERCHANTS]
            ws = await http.ws_connect(
                f"{hub.replace('http', 'ws')}/ws/orders?access_token={merchant['token']}", heartbeat=None
            )
            socket = Socket(merchant["id"])
            sockets.append(socket)
            connections.append(ws)
            listeners.append(asyncio.create_task(listen(ws, socket)))
        await asyncio.sleep(1.0)

        # Stage split: when each order.created reaches NATS (commit → relay → JetStream → here).
        import nats as nats_client

        on_nats: dict[str, float] = {}
        nc = await nats_client.connect(os.environ.get("NATS_URL", "nats://127.0.0.1:4222"))

        async def on_event(msg: Any) -> None:
            on_nats[json.loads(msg.data)["subject"]] = time.time()

        await nc.subscribe("smartpos.*.order.created", cb=on_event)

        created: dict[str, tuple[str, float]] = {}  # order id -> (merchant, created_at epoch)
        errors = 0

        async def writer(index: int, until: float) -> None:
            nonlocal errors
            n = index
            while time.monotonic() < until:
                merchant = merchants[n % MERCHANTS]
                n += WRITERS
                async with http.post(
                    f"{portal}/orders",
                    json={"store_id": merchant["store"], "items": [{"product_id": merchant["product"], "quantity": 1}]},
                    headers={"Authorization": f"Bearer {merchant['token']}"},
                ) as response:
                    body = await response.json()
                    if response.status != 201:
                        errors += 1
                        continue
                created[body["id"]] = (merchant["id"], datetime.fromisoformat(body["created_at"]).timestamp())

        with CpuMeter() as meter:
            until = time.monotonic() + SECONDS
            await asyncio.gather(*(writer(i, until) for i in range(WRITERS)))
            await asyncio.sleep(3.0)  # let the last events arrive
        await nc.close()
        for ws in connections:
            await ws.close()
        for task in listeners:
            task.cancel()

    latencies: list[float] = []
    missing = 0
    by_merchant: dict[str, list[str]] = defaultdict(list)
    for order_id, (merchant_id, _) in created.items():
        by_merchant[merchant_id].append(order_id)
    for socket in sockets:
        for order_id in by_merchant[socket.merchant_id]:
            arrived = socket.received.get(order_id)
            if arrived is None:
                missing += 1
            else:
                latencies.append(arrived - created[order_id][1])
    foreign = sum(socket.foreign for socket in sockets)
    to_nats = [on_nats[o] - c for o, (_, c) in created.items() if o in on_nats]
    return {
        "sockets": SOCKETS,
        "merchants": MERCHANTS,
        "orders": len(created),
        "orders_per_s": round(len(created) / SECONDS, 1),
        "deliveries": len(latencies),
        "deliveries_per_s": round(len(latencies) / SECONDS, 1),
        "missing_deliveries": missing,
        "foreign_deliveries": foreign,
        "request_errors": errors,
        "loadgen_cpu_share": meter.share(),
        "commit_to_socket": percentiles(latencies),
        "commit_to_nats": percentiles(to_nats),
    }


async def relay_benchmark(portal_db_url: str) -> dict[str, Any]:
    import asyncpg

    from smartpos_shared.ids import new_id

    conn = await asyncpg.connect(portal_db_url.replace("+asyncpg", ""))
    try:
        merchant_ids = [new_id("mer") for _ in range(MERCHANTS)]
        rows = []
        for i in range(RELAY_EVENTS):
            event_id = new_id("evt")
            merchant_id = merchant_ids[i % MERCHANTS]
            payload = {
                "id": event_id,
                "type": "bench.tick",
                "source": "bench",
                "merchant_id": merchant_id,
                "version": i,
                "data": {},
            }
            rows.append((event_id, "bench.tick", merchant_id, None, "bench", i, json.dumps(payload)))
        async with conn.transaction():
            await conn.executemany(
                "INSERT INTO outbox (id, type, merchant_id, store_id, subject, version, payload, created_at)"
                " VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, now())",
                rows,
            )
            await conn.execute("SELECT pg_notify('smartpos_outbox', '')")
        started = time.monotonic()
        while True:
            waiting = await conn.fetchval(
                "SELECT count(*) FROM outbox WHERE published_at IS NULL AND merchant_id = ANY($1::text[])", merchant_ids
            )
            if waiting == 0:
                break
            if time.monotonic() - started > 300:
                raise RuntimeError(f"relay still has {waiting} events after 300 s")
            await asyncio.sleep(0.05)
        elapsed = time.monotonic() - started
    finally:
        await conn.close()
    return {"events": RELAY_EVENTS, "seconds": round(elapsed, 2), "events_per_s": round(RELAY_EVENTS / elapsed, 1)}


async def main() -> None:
    auth = Server("device-auth")
    portal = Server("portal")
    hub = Server("smarttab")
    for server in (auth, portal, hub):
        server.env.update({"SMARTPOS_AUTH_ISSUER": auth.url, "SMARTPOS_PGW_MODE": "manual"})
    os.environ["SMARTPOS_AUTH_ISSUER"] = auth.url
    try:
        for server in (auth, portal, hub):
            server.start()
        feed = await feed_benchmark(auth.url, portal.url, hub.url)
        from portal.settings import PortalSettings

        relay = await relay_benchmark(PortalSettings().database_url)
    finally:
        for server in (hub, portal, auth):
            server.stop()
    save("feed", {"seconds": SECONDS, **feed})
    save("relay", relay)
    latency = feed["commit_to_socket"]
    table(
        f"feed ({SECONDS:.0f} s, {SOCKETS} sockets over {MERCHANTS} merchants, {WRITERS} order writers,"
        " 1 process per service)",
        [
            ("orders created/s", feed["orders_per_s"]),
            ("socket deliveries/s", feed["deliveries_per_s"]),
            ("commit-to-socket p50 / p95 / p99 ms", f"{latency['p50_ms']} / {latency['p95_ms']} / {latency['p99_ms']}"),
            (
                "  of which commit-to-NATS p50 / p99 ms",
                f"{feed['commit_to_nats']['p50_ms']} / {feed['commit_to_nats']['p99_ms']}",
            ),
            ("missing / foreign deliveries", f"{feed['missing_deliveries']} / {feed['foreign_deliveries']}"),
            ("request errors", feed["request_errors"]),
            ("load generator CPU share", feed["loadgen_cpu_share"]),
        ],
    )
    table(
        f"relay ({RELAY_EVENTS} committed outbox rows → JetStream, portal's relay)",
        [("events/s", relay["events_per_s"]), ("seconds", relay["seconds"])],
    )


if __name__ == "__main__":
    asyncio.run(main())
