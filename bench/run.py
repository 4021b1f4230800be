"""`make bench`: the platform's speed, measured against its own ceilings in the same run.

    BENCH_SECONDS=30 BENCH_TERMINALS=32 BENCH_SOCKETS=1000 BENCH_MERCHANTS=20 scripts/uv run python bench/run.py

Starts device-auth, portal (manual gateway: the load generator plays the gateway and delivers signed webhooks)
and smarttab as production does (uvicorn, uvloop, httptools, no access log; `BENCH_WORKERS` processes each,
default 1), unless BENCH_USE_RUNNING=1 (then it uses the services on 8000/8001/8002). Phases, each
BENCH_SECONDS long:

1. checkout + feed: BENCH_TERMINALS terminals loop the full flow (device token via private_key_jwt when needed,
   order with 2-3 items, bill, card payment, signed gateway webhook, read the order until completed) while
   BENCH_SOCKETS dashboard sockets over BENCH_MERCHANTS merchants follow the feed.
2. tokens: private_key_jwt issuance/s.  3. cached reads: authorized GET /orders/{id}/s.
4. ceilings: GET /healthz on the portal (same server setup) and pgbench TPC-B on the same PostgreSQL.

Prints a table and writes the same figures to bench-results.json (keys documented in docs/benchmarks.md).
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import random
import re
import shutil
import subprocess
import sys
import time
import uuid
from collections import defaultdict
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import CpuMeter, Server, percentiles, save, table
from device_auth.clients.bootstrap import bootstrap
from portal.pgw.signature import sign
from portal.settings import DEV_WEBHOOK_SECRET, PortalSettings
from tests.support.keys import DeviceKey, assertion_form

SECONDS = float(os.environ.get("BENCH_SECONDS", "30"))
TERMINALS = int(os.environ.get("BENCH_TERMINALS", "32"))
SOCKETS = int(os.environ.get("BENCH_SOCKETS", "1000"))
MERCHANTS = int(os.environ.get("BENCH_MERCHANTS", "20"))
WORKERS = int(os.environ.get("BENCH_WORKERS", "1"))
RELAY_PROCESS = os.environ.get("BENCH_RELAY_PROCESS", "1") == "1"
WEBHOOK_SECRET = os.environ.get("SMARTPOS_PGW_WEBHOOK_SECRET", DEV_WEBHOOK_SECRET)


def basic_auth(client_id: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()


class Client:
    """A pooled aiohttp session that records latency and status per named step."""

    def __init__(self, session: aiohttp.ClientSession) -> None:
        self.session = session
        self.latency: dict[str, list[float]] = defaultdict(list)
        self.errors: dict[str, int] = defaultdict(int)
        self.requests = 0

    async def call(self, step: str, method: str, url: str, expect: int, **kwargs: Any) -> Any:
        started = time.perf_counter()
        async with self.session.request(method, url, **kwargs) as response:
            body = await response.read()
            status = response.status
        self.latency[step].append(time.perf_counter() - started)
        self.requests += 1
        if status != expect:
            self.errors[f"{step}:{status}"] += 1
            return None
        return json.loads(body) if body else None


async def setup(http: aiohttp.ClientSession, auth: str, portal: str) -> list[dict[str, Any]]:
    admin = await bootstrap()
    basic = basic_auth(admin["client_id"], admin["client_secret"])
    async with http.post(
        f"{auth}/oauth/token", data={"grant_type": "client_credentials"}, headers={"Authorization": basic}
    ) as r:
        as_admin = {"Authorization": f"Bearer {(await r.json())['access_token']}"}
    merchants = []
    for i in range(MERCHANTS):
        async with http.post(
            f"{portal}/merchants", json={"name": f"bench {i}", "currency": "JPY"}, headers=as_admin
        ) as r:
            merchant = await r.json()
        async with http.post(
            f"{auth}/clients", json={"merchant_id": merchant["id"], "name": "dash"}, headers=as_admin
        ) as r:
            client = await r.json()
        basic = basic_auth(client["client_id"], client["client_secret"])
        async with http.post(
            f"{auth}/oauth/token", data={"grant_type": "client_credentials"}, headers={"Authorization": basic}
        ) as r:
            token = (await r.json())["access_token"]
        headers = {"Authorization": f"Bearer {token}"}
        async with http.post(f"{portal}/stores", json={"name": "main"}, headers=headers) as r:
            store = await r.json()
        products = []
        for name, price in (("coffee", 450), ("cake", 600), ("sandwich", 780)):
            async with http.post(f"{portal}/products", json={"name": name, "unit_price": price}, headers=headers) as r:
                products.append((await r.json())["id"])
        merchants.append(
            {"id": merchant["id"], "token": token, "store": store["id"], "products": products, "as_admin": as_admin}
        )
    return merchants


async def register_terminals(
    http: aiohttp.ClientSession, auth: str, merchants: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    terminals = []
    for i in range(TERMINALS):
        merchant = merchants[i % len(merchants)]
        key = DeviceKey()
        body = {
            "merchant_id": merchant["id"],
            "store_id": merchant["store"],
            "name": f"till {i}",
            "jwks": {"keys": [key.public_jwk]},
        }
        for _ in range(100):  # device-auth learns a new store from its store.created event (well within a second)
            async with http.post(f"{auth}/devices", json=body, headers=merchant["as_admin"]) as r:
                device = await r.json()
                if r.status != 404:
                    break
            await asyncio.sleep(0.05)
        terminals.append({"id": device["id"], "key": key, "merchant": merchant, "token": None, "expires": 0.0})
    return terminals


async def terminal_loop(
    client: Client,
    auth: str,
    portal: str,
    terminal: dict[str, Any],
    until: float,
    created: dict[str, float],
    order_merchant: dict[str, str],
    responded: dict[str, float],
) -> int:
    flows = 0
    rng = random.Random(terminal["id"])
    merchant = terminal["merchant"]
    while time.monotonic() < until:
        if time.time() > terminal["expires"] - 10:
            assertion = terminal["key"].assertion(terminal["id"], auth, claims={"jti": uuid.uuid4().hex})
            token = await client.call("token", "POST", f"{auth}/oauth/token", 200, data=assertion_form(assertion))
            if token is None:
                await asyncio.sleep(0.1)
                continue
            terminal["token"], terminal["expires"] = token["access_token"], time.time() + token["expires_in"]
        headers = {"Authorization": f"Bearer {terminal['token']}"}
        items = [
            {"product_id": p, "quantity": rng.randint(1, 3)}
            for p in rng.sample(merchant["products"], rng.randint(2, 3))
        ]
        order = await client.call(
            "create_order", "POST", f"{portal}/orders", 201, json={"items": items}, headers=headers
        )
        if order is None:
            continue
        created[order["id"]] = datetime.fromisoformat(order["created_at"]).timestamp()
        responded[order["id"]] = time.time()  # the commit happened before this response was sent
        order_merchant[order["id"]] = merchant["id"]
        bill = await client.call(
            "create_bill", "POST", f"{portal}/bills", 201, json={"order_id": order["id"]}, headers=headers
        )
        if bill is None:
            continue
        payment = await client.call(
            "pay_card", "POST", f"{portal}/payments", 201,
            json={"bill_id": bill["id"], "amount": bill["total_amount"], "method": "card"},
            headers={**headers, "Idempotency-Key": uuid.uuid4().hex},
        )  # fmt: skip
        if payment is None:
            continue
        event = json.dumps(
            {"id": f"evt_{uuid.uuid4().hex}", "type": "payment.succeeded",
             "data": {"pgw_reference": payment["pgw_reference"], "amount": payment["amount"]}}
        ).encode()  # fmt: skip
        signature = sign(WEBHOOK_SECRET, int(time.time()), event)
        await client.call(
            "webhook", "POST", f"{portal}/webhooks/pgw", 200, data=event,
            headers={"content-type": "application/json", "PGW-Signature": signature},
        )  # fmt: skip
        for _ in range(50):
            read = await client.call("read_order", "GET", f"{portal}/orders/{order['id']}", 200, headers=headers)
            if read is not None and read["status"] == "completed":
                flows += 1
                break
            await asyncio.sleep(0.01)
    return flows


class Socket:
    def __init__(self, merchant_id: str) -> None:
        self.merchant_id = merchant_id
        self.received: dict[str, float] = {}
        self.foreign = 0


async def listen(ws: aiohttp.ClientWebSocketResponse, socket: Socket) -> None:
    async for message in ws:
        if message.type != aiohttp.WSMsgType.TEXT:
            break
        now = time.time()
        event = json.loads(message.data)
        if event.get("type") != "order.created":
            continue
        if event["merchantId"] != socket.merchant_id:
            socket.foreign += 1
        socket.received[event["orderId"]] = now


async def db_commits(conn: asyncpg.Connection, names: list[str]) -> int:
    return int(
        await conn.fetchval("SELECT sum(xact_commit) FROM pg_stat_database WHERE datname = ANY($1::text[])", names)
    )


async def checkout_and_feed(auth: str, portal: str, hub: str, db_names: list[str]) -> dict[str, Any]:
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as http:
        merchants = await setup(http, auth, portal)
        terminals = await register_terminals(http, auth, merchants)
        sockets, connections, listeners = [], [], []
        for i in range(SOCKETS):
            merchant = merchants[i % MERCHANTS]
            ws = await http.ws_connect(f"{hub.replace('http', 'ws')}/ws/orders?access_token={merchant['token']}")
            socket = Socket(merchant["id"])
            sockets.append(socket)
            connections.append(ws)
            listeners.append(asyncio.create_task(listen(ws, socket)))
        await asyncio.sleep(1)
        client = Client(http)
        created: dict[str, float] = {}
        responded: dict[str, float] = {}
        order_merchant: dict[str, str] = {}
        dsn = PortalSettings().database_url.replace("+asyncpg", "")
        stats = await asyncpg.connect(dsn)
        commits_before = await db_commits(stats, db_names)
        with CpuMeter() as meter:
            until = time.monotonic() + SECONDS
            flows = await asyncio.gather(
                *(terminal_loop(client, auth, portal, t, until, created, order_merchant, responded) for t in terminals)
            )
        commits = await db_commits(stats, db_names) - commits_before
        await stats.close()
        await asyncio.sleep(2)  # the last events reach the sockets
        for ws in connections:
            await ws.close()
        for task in listeners:
            task.cancel()

    # Each order's merchant is known from the terminal that created it.
    by_merchant: dict[str, list[str]] = defaultdict(list)
    for order_id, merchant_id in order_merchant.items():
        by_merchant[merchant_id].append(order_id)
    latencies: list[float] = []
    after_response: list[float] = []
    missing = 0
    seen = {order_id for socket in sockets for order_id in socket.received}
    unseen = set(created) - seen
    for socket in sockets:
        for order_id in by_merchant[socket.merchant_id]:
            arrived = socket.received.get(order_id)
            if arrived is None:
                missing += 1
            elif order_id in created:
                latencies.append(arrived - created[order_id])
                after_response.append(arrived - responded[order_id])
    steps = {step: {"count": len(v), **percentiles(v)} for step, v in client.latency.items()}
    return {
        "checkout": {
            "terminals": TERMINALS,
            "flows": sum(flows),
            "flows_per_s": round(sum(flows) / meter.wall_seconds, 1),
            "http_requests_per_s": round(client.requests / meter.wall_seconds, 1),
            "db_transactions_per_s": round(commits / meter.wall_seconds, 1),
            "errors": sum(client.errors.values()),
            "error_detail": dict(client.errors),
            "steps": steps,
            "loadgen_cpu_share": meter.share(),
        },
        "feed": {
            "sockets": SOCKETS,
            "merchants": MERCHANTS,
            "orders": len(created),
            "orders_never_delivered": len(unseen),
            "missing_deliveries": missing,
            "foreign_deliveries": sum(s.foreign for s in sockets),
            "commit_to_socket": percentiles(latencies),
            # Lower bound of the event path alone: from the creating request's 201 (sent after its commit).
            "response_to_socket": percentiles(after_response),
        },
    }


async def rate(url: str, make_request: Any, concurrency: int = 32) -> dict[str, Any]:
    latencies: list[float] = []
    statuses: dict[int, int] = defaultdict(int)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as http:
        with CpuMeter() as meter:
            until = time.monotonic() + SECONDS

            async def loop(i: int) -> None:
                request = make_request(i)
                while time.monotonic() < until:
                    started = time.perf_counter()
                    status = await request(http)
                    latencies.append(time.perf_counter() - started)
                    statuses[status] += 1

            await asyncio.gather(*(loop(i) for i in range(concurrency)))
    ok = statuses.get(200, 0)
    return {
        "requests_per_s": round(len(latencies) / meter.wall_seconds, 1),
        "ok_per_s": round(ok / meter.wall_seconds, 1),
        "errors": sum(n for s, n in statuses.items() if s != 200),
        "loadgen_cpu_share": meter.share(),
        **percentiles(latencies),
    }


async def tokens_and_reads(auth: str, portal: str) -> dict[str, Any]:
    async with aiohttp.ClientSession() as http:
        merchants = await setup_one(http, auth, portal)
        terminals = await register_terminals(http, auth, merchants)
        token_terminal = terminals[0]
        assertion = token_terminal["key"].assertion(token_terminal["id"], auth)
        async with http.post(f"{auth}/oauth/token", data=assertion_form(assertion)) as r:
            device_token = (await r.json())["access_token"]
        headers = {"Authorization": f"Bearer {device_token}"}
        items = [{"product_id": merchants[0]["products"][0], "quantity": 1}]
        async with http.post(f"{portal}/orders", json={"items": items}, headers=headers) as r:
            order_id = (await r.json())["id"]

    def issue(i: int) -> Any:
        terminal = terminals[i % len(terminals)]

        async def request(http: aiohttp.ClientSession) -> int:
            assertion = terminal["key"].assertion(terminal["id"], auth, claims={"jti": uuid.uuid4().hex})
            async with http.post(f"{auth}/oauth/token", data=assertion_form(assertion)) as response:
                await response.read()
                return response.status

        return request

    def read(_: int) -> Any:
        async def request(http: aiohttp.ClientSession) -> int:
            async with http.get(f"{portal}/orders/{order_id}", headers=headers) as response:
                await response.read()
                return response.status

        return request

    def healthz(_: int) -> Any:
        async def request(http: aiohttp.ClientSession) -> int:
            async with http.get(f"{portal}/healthz") as response:
                await response.read()
                return response.status

        return request

    return {
        "tokens": await rate(auth, issue),
        "cached_order_reads": await rate(portal, read),
        "healthz_ceiling": await rate(portal, healthz),
    }


async def setup_one(http: aiohttp.ClientSession, auth: str, portal: str) -> list[dict[str, Any]]:
    global MERCHANTS
    saved, MERCHANTS = MERCHANTS, 1
    try:
        return await setup(http, auth, portal)
    finally:
        MERCHANTS = saved


def pgbench_ceiling() -> dict[str, Any]:
    """TPC-B on the same PostgreSQL server, in a database of its own."""
    binary = shutil.which("pgbench") or next(iter(sorted(Path("/usr/lib/postgresql").glob("*/bin/pgbench"))), None)
    if binary is None:
        return {"error": "pgbench not found (Debian package postgresql-client)"}
    parts = urlsplit(PortalSettings().database_url.replace("+asyncpg", ""))
    env = {
        **os.environ,
        "PGHOST": parts.hostname or "127.0.0.1",
        "PGPORT": str(parts.port or 5432),
        "PGUSER": parts.username or "postgres",
    }
    if parts.password:
        env["PGPASSWORD"] = parts.password
    subprocess.run(
        ["psql", "-q", "-c", "DROP DATABASE IF EXISTS smartpos_bench_pgbench", "postgres"],
        env=env,
        check=False,
        capture_output=True,
    )
    subprocess.run(
        ["psql", "-q", "-c", "CREATE DATABASE smartpos_bench_pgbench", "postgres"],
        env=env,
        check=True,
        capture_output=True,
    )
    subprocess.run(
        [str(binary), "-i", "-q", "-s", "10", "smartpos_bench_pgbench"], env=env, check=True, capture_output=True
    )
    out = subprocess.run(
        [str(binary), "-c", "16", "-j", "2", "-T", str(int(SECONDS)), "smartpos_bench_pgbench"],
        env=env, check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    tps = float(re.search(r"tps = ([0-9.]+)", out).group(1))  # type: ignore[union-attr]
    return {"tps": round(tps, 1), "scale": 10, "clients": 16, "seconds": int(SECONDS)}


async def main() -> None:
    relay: subprocess.Popen[bytes] | None = None
    if os.environ.get("BENCH_USE_RUNNING") == "1":
        auth_url, portal_url, hub_url = (f"http://127.0.0.1:{p}" for p in (8002, 8000, 8001))
        servers: list[Server] = []
        os.environ.setdefault("SMARTPOS_AUTH_ISSUER", auth_url)
    else:
        auth, portal, hub = (
            Server("device-auth", workers=WORKERS),
            Server("portal", workers=WORKERS),
            Server("smarttab", workers=WORKERS),
        )
        servers = [auth, portal, hub]
        for server in servers:
            server.env.update(
                {
                    "SMARTPOS_AUTH_ISSUER": auth.url,
                    "SMARTPOS_PGW_MODE": "manual",
                    "SMARTPOS_PGW_WEBHOOK_SECRET": WEBHOOK_SECRET,
                }
            )
        os.environ["SMARTPOS_AUTH_ISSUER"] = auth.url
        for server in servers:
            server.start()
        auth_url, portal_url, hub_url = auth.url, portal.url, hub.url
    db_names = [urlsplit(PortalSettings().database_url).path.lstrip("/"), "smartpos_auth"]
    try:
        results = await checkout_and_feed(auth_url, portal_url, hub_url, db_names)
        results.update(await tokens_and_reads(auth_url, portal_url))
    finally:
        for server in servers:
            server.stop()
        if relay is not None:
            relay.terminate()
            relay.wait(10)
    results["pgbench_ceiling"] = pgbench_ceiling()
    checkout, feed = results["checkout"], results["feed"]
    ceiling = results["healthz_ceiling"]["requests_per_s"]
    results["ratios"] = {
        "checkout_http_vs_healthz": round(checkout["http_requests_per_s"] / ceiling, 3) if ceiling else None,
        "db_transactions_vs_pgbench": round(checkout["db_transactions_per_s"] / results["pgbench_ceiling"]["tps"], 3)
        if results["pgbench_ceiling"].get("tps")
        else None,
    }
    results["machine"] = {
        "cores": os.cpu_count(),
        "server_processes_per_service": WORKERS,
        "relay_process": RELAY_PROCESS,
        "seconds": SECONDS,
    }
    bars = {
        "checkout_at_least_20pct_of_ceiling": (results["ratios"]["checkout_http_vs_healthz"] or 0) >= 0.20,
        "feed_p99_at_most_100ms": feed["commit_to_socket"]["p99_ms"] <= 100,
        "zero_errors": checkout["errors"] == 0 and feed["missing_deliveries"] == 0 and feed["foreign_deliveries"] == 0,
    }
    results["bars"] = bars
    for key, value in results.items():
        save(key, value)
    steps = checkout["steps"]
    rows = [
        ("checkout flows/s", f"{checkout['flows_per_s']} ({TERMINALS} terminals, {checkout['flows']} flows)"),
        ("checkout HTTP requests/s", checkout["http_requests_per_s"]),
        ("checkout DB transactions/s (portal + auth)", checkout["db_transactions_per_s"]),
        ("checkout errors", f"{checkout['errors']} {checkout['error_detail'] or ''}"),
    ]
    for step in ("token", "create_order", "create_bill", "pay_card", "webhook", "read_order"):
        if step in steps:
            s = steps[step]
            rows.append(
                (f"  {step} p50/p95/p99 ms", f"{s['p50_ms']} / {s['p95_ms']} / {s['p99_ms']}  (n={s['count']})")
            )
    rows += [
        (
            "feed commit-to-socket p50/p95/p99 ms",
            f"{feed['commit_to_socket']['p50_ms']} / {feed['commit_to_socket']['p95_ms']} / {feed['commit_to_socket']['p99_ms']}",
        ),
        (
            "  of which after the 201 response p50/p95/p99 ms",
            f"{feed['response_to_socket']['p50_ms']} / {feed['response_to_socket']['p95_ms']} / {feed['response_to_socket']['p99_ms']}",
        ),
        (
            "feed missing / foreign deliveries",
            f"{feed['missing_deliveries']} / {feed['foreign_deliveries']} ({SOCKETS} sockets, {MERCHANTS} merchants)",
        ),
        ("token issuance/s", results["tokens"]["ok_per_s"]),
        ("cached GET /orders/{id} req/s", results["cached_order_reads"]["ok_per_s"]),
        ("ceiling: GET /healthz req/s (portal, same setup)", ceiling),
        ("ceiling: pgbench TPC-B tps (same PostgreSQL)", results["pgbench_ceiling"].get("tps")),
        ("ratio checkout HTTP / healthz ceiling", results["ratios"]["checkout_http_vs_healthz"]),
        ("ratio checkout DB tx / pgbench", results["ratios"]["db_transactions_vs_pgbench"]),
        ("load generator CPU share (checkout)", checkout["loadgen_cpu_share"]),
        (
            "bars: ≥20% ceiling / feed p99 ≤100 ms / zero errors",
            " / ".join("met" if v else "NOT met" for v in bars.values()),
        ),
    ]
    table(f"make bench ({SECONDS:.0f} s per phase, {WORKERS} process(es) per service, {os.cpu_count()} cores)", rows)


if __name__ == "__main__":
    asyncio.run(main())
