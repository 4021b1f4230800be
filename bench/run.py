"""`make bench`: the platform's speed, measured against its own ceilings in the same run.

    BENCH_SECONDS=30 BENCH_TERMINALS=32 BENCH_SOCKETS=1000 BENCH_MERCHANTS=20 scripts/uv run python bench/run.py

What runs (`Stack`): device-auth, portal and smarttab as production runs them (uvicorn, uvloop, httptools, no
access log; `BENCH_WORKERS` processes each, default 1), the portal with the manual gateway (the load generator
plays the gateway and delivers signed webhooks) and without an in-process relay, the outbox relay as its own
process (`python -m portal.relay`), all on databases of the benchmark's own (`smartpos_bench_*` on the
configured PostgreSQL server, created and migrated at the start, dropped at the end). Phases, each BENCH_SECONDS:

1. checkout + feed, empty database: BENCH_TERMINALS terminals loop the full flow (device token via
   private_key_jwt when needed, order with 2-3 items, bill, card payment with an Idempotency-Key, signed gateway
   webhook, read the order until completed) while BENCH_SOCKETS dashboard sockets over BENCH_MERCHANTS merchants
   follow the feed. Server CPU per request comes from each server process's own CPU time (/proc) over the phase;
   SQL statements from the portal's `db_statements_total`.
2. history: BENCH_HISTORY_ORDERS (default 1,000,000) past orders with lines, bills and payments are written
   for the same merchants (bench/history.py), then phase 1 runs again.
3. tokens: private_key_jwt issuance/s.  4. cached reads: authorized GET /orders/{id}/s.
5. ceilings: GET /healthz on the portal and on device-auth (same server setup), pgbench TPC-B on the same
   PostgreSQL.

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
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import ROOT, CpuMeter, MachineCpu, ProcessCpu, Server, percentiles, save, table
from bench.history import seed_past_orders
from device_auth.clients.bootstrap import bootstrap
from portal.pgw.signature import sign
from portal.settings import DEV_WEBHOOK_SECRET
from smartpos_cli import migrate
from tests.support.keys import DeviceKey, assertion_form

SECONDS = float(os.environ.get("BENCH_SECONDS", "30"))
TERMINALS = int(os.environ.get("BENCH_TERMINALS", "32"))
SOCKETS = int(os.environ.get("BENCH_SOCKETS", "1000"))
MERCHANTS = int(os.environ.get("BENCH_MERCHANTS", "20"))
WORKERS = int(os.environ.get("BENCH_WORKERS", "1"))
HISTORY_ORDERS = int(os.environ.get("BENCH_HISTORY_ORDERS", "1000000"))
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


async def portal_statements(http: aiohttp.ClientSession, portal: str) -> float:
    """`db_statements_total` of the portal API process (BENCH_WORKERS=1: one process answers /metrics)."""
    async with http.get(f"{portal}/metrics") as response:
        text = await response.text()
    match = re.search(r'^db_statements_total\{service="portal"\} ([0-9.e+]+)$', text, re.M)
    return float(match.group(1)) if match else 0.0


async def outbox_rows(conn: asyncpg.Connection) -> int:
    return int(await conn.fetchval("SELECT coalesce(max(position), 0) FROM outbox"))


async def checkout_phase(stack: Stack, world: dict[str, Any], label: str) -> dict[str, Any]:
    """BENCH_TERMINALS terminals loop the full checkout for BENCH_SECONDS while BENCH_SOCKETS sockets follow."""
    merchants, terminals = world["merchants"], world["terminals"]
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as http:
        sockets, connections, listeners = [], [], []
        for i in range(SOCKETS):
            merchant = merchants[i % len(merchants)]
            ws = await http.ws_connect(f"{stack.hub.replace('http', 'ws')}/ws/orders?access_token={merchant['token']}")
            socket = Socket(merchant["id"])
            sockets.append(socket)
            connections.append(ws)
            listeners.append(asyncio.create_task(listen(ws, socket)))
        await asyncio.sleep(1)
        client = Client(http)
        created: dict[str, float] = {}
        responded: dict[str, float] = {}
        order_merchant: dict[str, str] = {}
        stats = await asyncpg.connect(stack.dsn("portal"))
        commits_before = await db_commits(stats, stack.db_names)
        statements_before = await portal_statements(http, stack.portal)
        events_before = await outbox_rows(stats)
        with CpuMeter() as meter, ProcessCpu(stack.pids()) as cpu, MachineCpu() as machine:
            until = time.monotonic() + SECONDS
            flows = await asyncio.gather(
                *(
                    terminal_loop(client, stack.auth, stack.portal, t, until, created, order_merchant, responded)
                    for t in terminals
                )
            )
        commits = await db_commits(stats, stack.db_names) - commits_before
        statements = await portal_statements(http, stack.portal) - statements_before
        events = await outbox_rows(stats) - events_before
        await stats.close()
        await asyncio.sleep(2)  # the last events reach the sockets
        for ws in connections:
            await ws.close()
        for task in listeners:
            task.cancel()

    by_merchant: dict[str, list[str]] = defaultdict(list)
    for order_id, merchant_id in order_merchant.items():
        by_merchant[merchant_id].append(order_id)
    latencies: list[float] = []
    after_response: list[float] = []
    missing = 0
    seen = {order_id for socket in sockets for order_id in socket.received}
    unseen = set(created) - seen
    delivered = 0
    for socket in sockets:
        delivered += len(socket.received)
        for order_id in by_merchant[socket.merchant_id]:
            arrived = socket.received.get(order_id)
            if arrived is None:
                missing += 1
            elif order_id in created:
                latencies.append(arrived - created[order_id])
                after_response.append(arrived - responded[order_id])
    steps = {step: {"count": len(v), **percentiles(v)} for step, v in client.latency.items()}
    total_flows = sum(flows)
    portal_requests = sum(len(v) for step, v in client.latency.items() if step != "token")
    token_requests = len(client.latency.get("token", []))
    return {
        "checkout": {
            "phase": label,
            "terminals": TERMINALS,
            "flows": total_flows,
            "flows_per_s": round(total_flows / meter.wall_seconds, 1),
            "http_requests_per_s": round(client.requests / meter.wall_seconds, 1),
            "portal_requests_per_flow": round(portal_requests / total_flows, 2) if total_flows else None,
            "db_transactions_per_s": round(commits / meter.wall_seconds, 1),
            "db_transactions_per_flow": round(commits / total_flows, 2) if total_flows else None,
            "sql_statements_per_flow": round(statements / total_flows, 2) if total_flows else None,
            "errors": sum(client.errors.values()),
            "error_detail": dict(client.errors),
            "steps": steps,
            "loadgen_cpu_share": meter.share(),
            "server_cpu": {
                "portal_ms_per_request": cpu.ms_per("portal", portal_requests),
                "device_auth_ms_per_token": cpu.ms_per("device-auth", token_requests),
                "smarttab_ms_per_socket_delivery": cpu.ms_per("smarttab", delivered),
                "relay_ms_per_event": cpu.ms_per("relay", events),
                "cores_busy": cpu.cores(),
            },
            # The whole machine over the phase: its busy share, and the cores each program kept busy (the
            # load generator is `python`'s share less the services').
            "machine_cpu": {
                "busy_share": machine.busy_share,
                "cores_busy": machine.cores_busy,
                "by_program": machine.programs,
            },
        },
        "feed": {
            "phase": label,
            "sockets": SOCKETS,
            "merchants": len(merchants),
            "orders": len(created),
            "events_published": events,
            "socket_deliveries": delivered,
            "orders_never_delivered": len(unseen),
            "missing_deliveries": missing,
            "foreign_deliveries": sum(s.foreign for s in sockets),
            "commit_to_socket": percentiles(latencies),
            # Lower bound of the event path alone: from the creating request's 201 (sent after its commit).
            "response_to_socket": percentiles(after_response),
        },
    }


async def rate(stack: Stack, server: str, make_request: Any, concurrency: int = 32) -> dict[str, Any]:
    latencies: list[float] = []
    statuses: dict[int, int] = defaultdict(int)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as http:
        with CpuMeter() as meter, ProcessCpu({server: stack.pids()[server]}) as cpu:
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
        "server_cpu_ms_per_request": cpu.ms_per(server, len(latencies)),
        "server_cores_busy": cpu.cores()[server],
        "errors": sum(n for s, n in statuses.items() if s != 200),
        "loadgen_cpu_share": meter.share(),
        **percentiles(latencies),
    }


async def tokens_and_reads(stack: Stack, world: dict[str, Any]) -> dict[str, Any]:
    auth, portal = stack.auth, stack.portal
    terminals = world["terminals"]
    async with aiohttp.ClientSession() as http:
        token_terminal = terminals[0]
        assertion = token_terminal["key"].assertion(token_terminal["id"], auth, claims={"jti": uuid.uuid4().hex})
        async with http.post(f"{auth}/oauth/token", data=assertion_form(assertion)) as r:
            device_token = (await r.json())["access_token"]
        headers = {"Authorization": f"Bearer {device_token}"}
        items = [{"product_id": token_terminal["merchant"]["products"][0], "quantity": 1}]
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

    def healthz(base: str) -> Any:
        def make(_: int) -> Any:
            async def request(http: aiohttp.ClientSession) -> int:
                async with http.get(f"{base}/healthz") as response:
                    await response.read()
                    return response.status

            return request

        return make

    return {
        "tokens": await rate(stack, "device-auth", issue),
        "cached_order_reads": await rate(stack, "portal", read),
        "healthz_ceiling": await rate(stack, "portal", healthz(portal)),
        "auth_healthz_ceiling": await rate(stack, "device-auth", healthz(auth)),
    }


def pgbench_ceiling() -> dict[str, Any]:
    """TPC-B on the same PostgreSQL server, in a database of its own."""
    binary = shutil.which("pgbench") or next(iter(sorted(Path("/usr/lib/postgresql").glob("*/bin/pgbench"))), None)
    if binary is None:
        return {"error": "pgbench not found (Debian package postgresql-client)"}
    parts = urlsplit(bench_database_url("portal").replace("+asyncpg", ""))
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


class Stack:
    """The platform as production runs it, on databases of the benchmark's own (created fresh, migrated, dropped
    at the end): device-auth, portal (API without an in-process relay), the relay as its own process
    (`python -m portal.relay`), smarttab; `BENCH_WORKERS` uvicorn processes per service."""

    def __init__(self) -> None:
        self.urls = {service: bench_database_url(service) for service in DB_SERVICES}
        env = {var: self.urls[service] for service, var in DB_SERVICES.items()}
        self.auth_server = Server("device-auth", env, workers=WORKERS)
        self.portal_server = Server("portal", env, workers=WORKERS)
        self.hub_server = Server("smarttab", env, workers=WORKERS)
        self.servers = [self.auth_server, self.portal_server, self.hub_server]
        for server in self.servers:
            server.env.update(
                {
                    "SMARTPOS_AUTH_ISSUER": self.auth_server.url,
                    "SMARTPOS_PGW_MODE": "manual",  # the load generator plays the gateway
                    "SMARTPOS_PGW_WEBHOOK_SECRET": WEBHOOK_SECRET,
                    "PORTAL_RELAY_IN_PROCESS": "false",
                }
            )
        self.relay_env = {**self.portal_server.env}
        self.relay: subprocess.Popen[bytes] | None = None
        self.auth, self.portal, self.hub = self.auth_server.url, self.portal_server.url, self.hub_server.url
        self.db_names = [urlsplit(url).path.lstrip("/") for url in self.urls.values()]

    def dsn(self, service: str) -> str:
        return self.urls[service].replace("+asyncpg", "")

    async def start(self) -> None:
        for service, url in self.urls.items():
            await recreate_database(url)
            await asyncio.to_thread(migrate.run, migrate.SERVICES[service], "upgrade", "head", database_url=url)
        for service, var in DB_SERVICES.items():  # bootstrap() and the seeding read these
            os.environ[var] = self.urls[service]
        os.environ["SMARTPOS_AUTH_ISSUER"] = self.auth
        for server in self.servers:
            server.start()
        self.relay = subprocess.Popen(
            [sys.executable, "-m", "portal.relay"], env=self.relay_env, cwd=ROOT,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip

    def pids(self) -> dict[str, int]:
        assert self.relay is not None
        return {
            "portal": self.portal_server.pid,
            "device-auth": self.auth_server.pid,
            "smarttab": self.hub_server.pid,
            "relay": self.relay.pid,
        }

    async def stop(self) -> None:
        if self.relay is not None:
            self.relay.terminate()
            self.relay.wait(10)
        for server in self.servers:
            server.stop()
        for url in self.urls.values():
            await drop_database(url)


DB_SERVICES = {"portal": "PORTAL_DATABASE_URL", "smarttab": "SMARTTAB_DATABASE_URL", "device-auth": "AUTH_DATABASE_URL"}
DEFAULT_DB_URLS = {
    "portal": "postgresql+asyncpg://postgres@127.0.0.1:5432/smartpos_portal",
    "smarttab": "postgresql+asyncpg://postgres@127.0.0.1:5432/smartpos_smarttab",
    "device-auth": "postgresql+asyncpg://postgres@127.0.0.1:5432/smartpos_auth",
}


def bench_database_url(service: str) -> str:
    """The configured server, a database of the benchmark's own."""
    base = urlsplit(os.environ.get(DB_SERVICES[service]) or DEFAULT_DB_URLS[service])
    return urlunsplit(base._replace(path=f"/smartpos_bench_{service.replace('-', '_')}"))


async def _server_connection(url: str) -> asyncpg.Connection:
    return await asyncpg.connect(urlsplit(url.replace("+asyncpg", ""))._replace(path="/postgres").geturl())


async def recreate_database(url: str) -> None:
    name = urlsplit(url).path.lstrip("/")
    conn = await _server_connection(url)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()


async def drop_database(url: str) -> None:
    conn = await _server_connection(url)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{urlsplit(url).path.lstrip("/")}" WITH (FORCE)')
    finally:
        await conn.close()


def _steps_rows(checkout: dict[str, Any]) -> list[tuple[str, Any]]:
    rows = []
    for step in ("token", "create_order", "create_bill", "pay_card", "webhook", "read_order"):
        if step in checkout["steps"]:
            s = checkout["steps"][step]
            rows.append(
                (f"  {step} p50/p95/p99 ms", f"{s['p50_ms']} / {s['p95_ms']} / {s['p99_ms']}  (n={s['count']})")
            )
    return rows


def _pct(p: dict[str, float]) -> str:
    return f"{p['p50_ms']} / {p['p95_ms']} / {p['p99_ms']}"


async def main() -> None:
    stack = Stack()
    await stack.start()
    results: dict[str, Any] = {}
    try:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
            merchants = await setup(http, stack.auth, stack.portal)
            world = {"merchants": merchants, "terminals": await register_terminals(http, stack.auth, merchants)}
        empty = await checkout_phase(stack, world, "empty database")
        results["checkout"], results["feed"] = empty["checkout"], empty["feed"]
        results["history_seed"] = await seed_past_orders(stack.dsn("portal"), merchants, HISTORY_ORDERS)
        history = await checkout_phase(stack, world, f"{HISTORY_ORDERS:,} past orders")
        results["history_checkout"], results["history_feed"] = history["checkout"], history["feed"]
        results.update(await tokens_and_reads(stack, world))
    finally:
        await stack.stop()
    results["pgbench_ceiling"] = pgbench_ceiling()
    checkout, feed, hist = results["checkout"], results["feed"], results["history_checkout"]
    ceiling = results["healthz_ceiling"]["requests_per_s"]
    auth_ceiling = results["auth_healthz_ceiling"]["requests_per_s"]
    results["ratios"] = {
        "checkout_http_vs_healthz": round(checkout["http_requests_per_s"] / ceiling, 3) if ceiling else None,
        "tokens_vs_auth_healthz": round(results["tokens"]["ok_per_s"] / auth_ceiling, 3) if auth_ceiling else None,
        "history_flows_vs_empty": round(hist["flows_per_s"] / checkout["flows_per_s"], 3)
        if checkout["flows_per_s"]
        else None,
        "db_transactions_vs_pgbench": round(checkout["db_transactions_per_s"] / results["pgbench_ceiling"]["tps"], 3)
        if results["pgbench_ceiling"].get("tps")
        else None,
    }
    results["machine"] = {
        "cores": os.cpu_count(),
        "server_processes_per_service": WORKERS,
        "relay": "its own process (python -m portal.relay); PORTAL_RELAY_IN_PROCESS=false on the API",
        "databases": "smartpos_bench_* on the configured PostgreSQL, created and migrated for the run, then dropped",
        "seconds_per_phase": SECONDS,
    }
    portal_cpu = checkout["server_cpu"]["portal_ms_per_request"]
    bars = {
        "portal_cpu_per_checkout_request_at_most_2ms": portal_cpu is not None and portal_cpu <= 2.0,
        "checkout_http_at_least_12pct_of_healthz": (results["ratios"]["checkout_http_vs_healthz"] or 0) >= 0.12,
        "at_most_25_sql_statements_per_flow": (checkout["sql_statements_per_flow"] or 99) <= 25,
        "feed_p99_at_most_100ms": feed["commit_to_socket"]["p99_ms"] <= 100,
        "tokens_at_least_20pct_of_auth_healthz": (results["ratios"]["tokens_vs_auth_healthz"] or 0) >= 0.20,
        "history_flows_within_10pct": (results["ratios"]["history_flows_vs_empty"] or 0) >= 0.90,
        "zero_errors": all(c["errors"] == 0 for c in (checkout, hist))
        and all(f["missing_deliveries"] == 0 and f["foreign_deliveries"] == 0 for f in (feed, results["history_feed"])),
    }
    results["bars"] = bars
    for key, value in results.items():
        save(key, value)
    cpu = checkout["server_cpu"]
    rows: list[tuple[str, Any]] = [
        (
            "checkout flows/s (empty database)",
            f"{checkout['flows_per_s']} ({TERMINALS} terminals, {checkout['flows']} flows)",
        ),
        ("checkout HTTP requests/s", checkout["http_requests_per_s"]),
        ("checkout errors", f"{checkout['errors']} {checkout['error_detail'] or ''}"),
        *_steps_rows(checkout),
        ("portal CPU ms per checkout request", cpu["portal_ms_per_request"]),
        ("SQL statements per flow (portal API)", checkout["sql_statements_per_flow"]),
        ("DB transactions per flow (portal, auth, smarttab, relay)", checkout["db_transactions_per_flow"]),
        (
            "relay CPU ms per event / smarttab CPU ms per socket delivery",
            f"{cpu['relay_ms_per_event']} / {cpu['smarttab_ms_per_socket_delivery']}",
        ),
        ("cores busy (portal, device-auth, smarttab, relay)", cpu["cores_busy"]),
        (
            "machine: cores busy of all; top programs",
            f"{checkout['machine_cpu']['cores_busy']} of {os.cpu_count()};"
            f" {dict(list(checkout['machine_cpu']['by_program'].items())[:6])}",
        ),
        ("feed commit-to-socket p50/p95/p99 ms", _pct(feed["commit_to_socket"])),
        ("  of which after the 201 response p50/p95/p99 ms", _pct(feed["response_to_socket"])),
        (
            "feed missing / foreign deliveries",
            f"{feed['missing_deliveries']} / {feed['foreign_deliveries']} ({SOCKETS} sockets, {len(merchants)} merchants)",
        ),
        (f"history: {HISTORY_ORDERS:,} past orders seeded in", f"{results['history_seed']['seconds']} s"),
        ("history: checkout flows/s", f"{hist['flows_per_s']} (errors {hist['errors']})"),
        (
            "history: portal CPU ms per request / statements per flow",
            f"{hist['server_cpu']['portal_ms_per_request']} / {hist['sql_statements_per_flow']}",
        ),
        ("history: feed commit-to-socket p50/p95/p99 ms", _pct(results["history_feed"]["commit_to_socket"])),
        (
            "token issuance/s (device-auth CPU ms per token)",
            f"{results['tokens']['ok_per_s']} ({results['tokens']['server_cpu_ms_per_request']})",
        ),
        (
            "cached GET /orders/{id} req/s (portal CPU ms per read)",
            f"{results['cached_order_reads']['ok_per_s']} ({results['cached_order_reads']['server_cpu_ms_per_request']})",
        ),
        (
            "ceiling: portal GET /healthz req/s (CPU ms per request)",
            f"{ceiling} ({results['healthz_ceiling']['server_cpu_ms_per_request']})",
        ),
        ("ceiling: device-auth GET /healthz req/s", auth_ceiling),
        ("ceiling: pgbench TPC-B tps (same PostgreSQL)", results["pgbench_ceiling"].get("tps")),
        ("ratio checkout HTTP / portal healthz", results["ratios"]["checkout_http_vs_healthz"]),
        ("ratio tokens / device-auth healthz", results["ratios"]["tokens_vs_auth_healthz"]),
        ("ratio history flows / empty flows", results["ratios"]["history_flows_vs_empty"]),
        ("load generator CPU share (checkout)", checkout["loadgen_cpu_share"]),
    ]
    rows += [(f"bar: {name}", "met" if met else "NOT met") for name, met in bars.items()]
    table(f"make bench ({SECONDS:.0f} s per phase, {WORKERS} process(es) per service, {os.cpu_count()} cores)", rows)


if __name__ == "__main__":
    asyncio.run(main())
