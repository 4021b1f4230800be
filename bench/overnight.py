"""`make bench-overnight`: the overnight run at scale, and how its cost grows with stores and with orders.

    scripts/uv run python bench/overnight.py                     # the default scenarios below
    BENCH_OVERNIGHT_SCENARIOS=10000x100 scripts/uv run python bench/overnight.py

What runs, per scenario `STORESxORDERS`: a database of the benchmark's own (`smartpos_bench_overnight` on the
configured PostgreSQL server, created and migrated with the portal's real migrations, dropped at the end) is seeded
with STORES stores (100 per merchant, timezone UTC, day closing at 04:00) that opened at the start of the last
ended business day, each with ORDERS completed orders in that day — a bill and one succeeded payment each (two in
three by card), one in ten partly refunded in cash — written by set-based SQL. Then one pass of the overnight run
runs exactly as operators run it: `python -m portal.scheduler --once` (one process, SCHEDULER_CONCURRENCY
stores at once, default 4; manual gateway with the Redis settlement ledger, empty, so every card payment is
reported missing at the gateway: the reconciliation does its full work). For each store it expires stale pending
payments (none), seals one Z report (with its closeout.created event) and stores one reconciliation.

Figures: the pass's wall time, stores/s, and money rows/s (payments + refunds + orders the reports counted, per
second of the pass); the scheduler's CPU (cores) and the rest of the machine's (PostgreSQL above all). Cost per store and per 1,000 rows for each scenario
shows how it grows: linear if per-store cost is flat as stores grow and per-row cost is flat as orders grow.
Writes the figures to bench-results.json under `overnight`.
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import ROOT, MachineCpu, reference_ms, save, table
from portal.closeout.business_day import BusinessDay

DEFAULT_SCENARIOS = "2500x100,5000x100,10000x100,2500x50,2500x200"
SCENARIOS = [
    tuple(int(n) for n in s.split("x"))
    for s in os.environ.get("BENCH_OVERNIGHT_SCENARIOS", DEFAULT_SCENARIOS).split(",")
]
CONCURRENCY = int(os.environ.get("SCHEDULER_CONCURRENCY", "4"))
STORES_PER_MERCHANT = 100

SEED = """
WITH m AS (
  INSERT INTO merchants (id, name, currency, created_at)
  SELECT 'mer_B' || lpad(g::text, 25, '0'), 'bench ' || g, 'JPY', $1 FROM generate_series(1, $3) g RETURNING id
)
INSERT INTO stores (id, merchant_id, name, created_at, timezone, day_closes_at)
SELECT 'sto_B' || lpad(g::text, 25, '0'), 'mer_B' || lpad(((g - 1) / $4 + 1)::text, 25, '0'), 'store ' || g, $1,
       'UTC', '04:00'
FROM generate_series(1, $2) g
"""
SEED_ORDERS = """
WITH o AS (
  INSERT INTO orders (id, merchant_id, store_id, status, total_amount, currency, version, created_at, updated_at,
                      completed_at, item_count)
  SELECT 'ord_B' || lpad(s::text, 12, '0') || lpad(k::text, 13, '0'),
         'mer_B' || lpad(((s - 1) / $3 + 1)::text, 25, '0'), 'sto_B' || lpad(s::text, 25, '0'), 'completed',
         500 + (k % 17) * 100, 'JPY', 2, t, t, t, 2
  FROM generate_series($4::int, $5::int) s, generate_series(1, $2::int) k,
       LATERAL (SELECT $1::timestamptz + (k * (interval '1 second' * (82800 / $2::int)))) AS at_(t)
  RETURNING id, merchant_id, store_id, total_amount, completed_at
), b AS (
  INSERT INTO bills (id, merchant_id, store_id, order_id, status, total_amount, paid_amount, currency, paid_at,
                     version, created_at, updated_at)
  SELECT 'bil' || substr(o.id, 4), o.merchant_id, o.store_id, o.id, 'paid', o.total_amount, o.total_amount, 'JPY',
         o.completed_at, 2, o.completed_at, o.completed_at FROM o
  RETURNING id
), p AS (
  INSERT INTO payments (id, merchant_id, store_id, bill_id, order_id, amount, currency, method, status,
                        pgw_reference, version, created_at, updated_at, succeeded_at, refunded_amount)
  SELECT 'pay' || substr(o.id, 4), o.merchant_id, o.store_id, 'bil' || substr(o.id, 4), o.id, o.total_amount, 'JPY',
         CASE WHEN right(o.id, 1) IN ('0', '3', '6') THEN 'cash' ELSE 'card' END, 'succeeded',
         CASE WHEN right(o.id, 1) IN ('0', '3', '6') THEN NULL ELSE 'pgwref' || substr(o.id, 4) END,
         2, o.completed_at, o.completed_at, o.completed_at, CASE WHEN right(o.id, 1) = '7' THEN 100 ELSE 0 END
  FROM o RETURNING id, merchant_id, store_id, order_id, bill_id, succeeded_at
)
INSERT INTO refunds (id, merchant_id, store_id, order_id, bill_id, payment_id, amount, currency, method, status,
                     version, created_at, updated_at)
SELECT 'ref' || substr(p.id, 4), p.merchant_id, p.store_id, p.order_id, p.bill_id, p.id, 100, 'JPY', 'cash',
       'succeeded', 1, p.succeeded_at + interval '10 minutes', p.succeeded_at + interval '10 minutes'
FROM p WHERE right(p.order_id, 1) = '7'
"""


def database_url() -> str:
    base = urlsplit(os.environ.get("PORTAL_DATABASE_URL") or "postgresql+asyncpg://postgres@127.0.0.1:5432/x")
    return urlunsplit(base._replace(path="/smartpos_bench_overnight"))


def dsn(url: str, database: str | None = None) -> str:
    parts = urlsplit(url.replace("+asyncpg", ""))
    return (parts._replace(path=f"/{database}") if database else parts).geturl()


async def recreate(url: str) -> None:
    conn = await asyncpg.connect(dsn(url, "postgres"))
    try:
        await conn.execute('DROP DATABASE IF EXISTS "smartpos_bench_overnight" WITH (FORCE)')
        await conn.execute('CREATE DATABASE "smartpos_bench_overnight"')
    finally:
        await conn.close()


async def drop(url: str) -> None:
    conn = await asyncpg.connect(dsn(url, "postgres"))
    try:
        await conn.execute('DROP DATABASE IF EXISTS "smartpos_bench_overnight" WITH (FORCE)')
    finally:
        await conn.close()


def migrate(url: str) -> None:
    env = {**os.environ, "PORTAL_DATABASE_URL": url}
    subprocess.run(
        [sys.executable, "-m", "smartpos_cli", "migrate", "portal", "upgrade", "head"],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
    )


async def seed(url: str, stores: int, orders: int, day_start: datetime) -> float:
    started = time.perf_counter()
    conn = await asyncpg.connect(dsn(url))
    try:
        merchants = (stores + STORES_PER_MERCHANT - 1) // STORES_PER_MERCHANT
        await conn.execute(SEED, day_start, stores, merchants, STORES_PER_MERCHANT)
        chunk = max(1, 200_000 // orders)  # ~200k orders per statement
        for first in range(1, stores + 1, chunk):
            last = min(stores, first + chunk - 1)
            await conn.execute(SEED_ORDERS, day_start, orders, STORES_PER_MERCHANT, first, last)
        await conn.execute("VACUUM ANALYZE")
    finally:
        await conn.close()
    return time.perf_counter() - started


async def counted_rows(url: str) -> dict[str, int]:
    conn = await asyncpg.connect(dsn(url))
    try:
        row = await conn.fetchrow(
            "SELECT (SELECT count(*) FROM z_reports) AS reports, (SELECT sum(orders) FROM z_reports) AS orders,"
            " (SELECT sum((m->>'payments')::bigint + (m->>'refunds')::bigint) FROM z_reports,"
            "  jsonb_each(by_method) AS e(k, m)) AS money_rows,"
            " (SELECT count(*) FROM reconciliations) AS reconciliations"
        )
        assert row is not None
        return {k: int(row[k] or 0) for k in ("reports", "orders", "money_rows", "reconciliations")}
    finally:
        await conn.close()


def children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def overnight_pass(url: str) -> tuple[dict[str, Any], float, float]:
    """One `python -m portal.scheduler --once`: its summary, wall seconds and CPU seconds."""
    env = {
        **os.environ,
        "PORTAL_DATABASE_URL": url,
        "SMARTPOS_PGW_MODE": "manual",
        "SMARTPOS_LOG_LEVEL": "WARNING",
        "SCHEDULER_CONCURRENCY": str(CONCURRENCY),
    }
    cpu_before = children_cpu_seconds()
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "portal.scheduler", "--once"], cwd=ROOT, env=env, capture_output=True, text=True
    )
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(f"the overnight pass failed: {proc.stderr[-3000:]}")
    summary: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return summary, wall, children_cpu_seconds() - cpu_before


async def main() -> None:
    url = database_url()
    now = datetime.now(UTC)
    business = BusinessDay("UTC")
    day = business.last_ended(now)
    day_start = business.window(day)[0]
    results: list[dict[str, Any]] = []
    for stores, orders in SCENARIOS:
        await recreate(url)
        migrate(url)
        seed_seconds = await seed(url, stores, orders, day_start)
        reference = reference_ms()
        with MachineCpu() as machine:
            summary, wall, scheduler_cpu = overnight_pass(url)
        rows = await counted_rows(url)
        assert rows["reports"] == stores and rows["orders"] == stores * orders, (rows, summary)
        money_rows = rows["money_rows"] + rows["orders"]
        seconds = float(summary["seconds"])
        figures: dict[str, Any] = {
            "stores": stores,
            "orders_per_store": orders,
            "seed_seconds": round(seed_seconds, 1),
            "process_seconds": round(wall, 2),  # the scheduler process, start-up included
            "pass_seconds": round(seconds, 2),  # the pass itself (its own summary)
            "stores_per_second": round(stores / seconds, 1),
            "rows_per_second": round(money_rows / seconds),
            "ms_per_store": round(seconds * 1000 / stores, 2),
            "ms_per_1000_rows": round(seconds * 1000 / money_rows * 1000, 2),
            "scheduler_cpu_seconds": round(scheduler_cpu, 1),
            "scheduler_cores": round(scheduler_cpu / wall, 2),
            # Everything else on the machine over the pass, PostgreSQL above all (its backends exit with the
            # scheduler, so they are counted from the machine's total, not per process).
            "other_busy_cores": round(machine.cores_busy - scheduler_cpu / wall, 2),
            "machine_busy_cores": machine.cores_busy,
            "reference_ms": reference,  # the machine's speed just before the pass (bench.common.reference_ms)
            "reports": rows["reports"],
            "reconciliations": rows["reconciliations"],
            "summary": summary,
        }
        results.append(figures)
        table(
            f"overnight run: {stores:,} stores x {orders} orders (one `python -m portal.scheduler --once`, "
            f"concurrency {CONCURRENCY})",
            [(k, v) for k, v in figures.items() if k != "summary"],
        )
    if os.environ.get("BENCH_OVERNIGHT_KEEP") != "1":
        await drop(url)
    base: dict[str, Any] = results[0]
    work = int(base["stores"]) * int(base["orders_per_store"])
    print("\ngrowth (relative to the first scenario):")
    for figures in results:
        print(
            f"  {figures['stores']:>6,} stores x {figures['orders_per_store']:>3} orders:"
            f" pass x{figures['pass_seconds'] / base['pass_seconds']:.2f},"
            f" work x{int(figures['stores']) * int(figures['orders_per_store']) / work:.2f},"
            f" ms/store {figures['ms_per_store']}, ms/1000 rows {figures['ms_per_1000_rows']}"
        )
    save("overnight", {"concurrency": CONCURRENCY, "scenarios": results})


if __name__ == "__main__":
    asyncio.run(main())
