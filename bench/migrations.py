"""Migration benchmark: the portal's data-moving revisions (orders.item_count expand → backfill → contract) up
and down on 1,000,000 orders while the shops keep writing.

    BENCH_ORDERS=1000000 scripts/uv run python bench/migrations.py

Uses its own database (`smartpos_bench_portal`, recreated each run) on the configured PostgreSQL server. Seeds
orders and their lines with COPY at the revision before the change, then, with a concurrent writer creating
orders (as the application does: order + lines in one transaction) the whole time:

  up:   expand (the application now writes item_count) → backfill + contract
  down: contract and backfill down (the application stops writing item_count) → expand down

and reports each phase's time, rows/s, the writer's worst transaction latency, the longest lock wait any backend
showed in pg_stat_activity (sampled every 10 ms), and whether row counts and checksums of the existing data
matched after every step (and item_count was right for every order after the upgrade).
"""

from __future__ import annotations

import asyncio
import os
import random
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import save, table
from portal.settings import PortalSettings
from smartpos_cli import migrate

ORDERS = int(os.environ.get("BENCH_ORDERS", "1000000"))
BEFORE = "1b054a72d710"  # commerce core: the revision before the item_count change
EXPAND = "ad0c21390a13"
MERCHANTS = 50
CHECKSUM_SQL = {
    "orders": "SELECT count(*), md5(string_agg(id || status || total_amount || version, ',' ORDER BY id))"
    " FROM orders WHERE id < 'ord_1'",
    "order_lines": "SELECT count(*), md5(string_agg(order_id || line_no || quantity || line_total, ','"
    " ORDER BY order_id, line_no)) FROM order_lines WHERE order_id < 'ord_1'",
}


def bench_url() -> str:
    base = urlsplit(PortalSettings().database_url)
    return urlunsplit(base._replace(path="/smartpos_bench_portal"))


def dsn(url: str) -> str:
    return url.replace("+asyncpg", "")


async def recreate(url: str) -> None:
    server = urlsplit(dsn(url))._replace(path="/postgres").geturl()
    conn = await asyncpg.connect(server)
    try:
        await conn.execute('DROP DATABASE IF EXISTS "smartpos_bench_portal" WITH (FORCE)')
        await conn.execute('CREATE DATABASE "smartpos_bench_portal"')
    finally:
        await conn.close()


def seed_id(prefix: str, n: int) -> str:
    # Seeded ids sort below every ULID-based id ("0…" < "01M…"), so checksums cover exactly the seeded rows.
    return f"{prefix}_0{n:025d}"


async def seed(conn: asyncpg.Connection) -> tuple[int, float]:
    started = time.monotonic()
    merchants = [(seed_id("mer", m), f"bench {m}", "JPY") for m in range(MERCHANTS)]
    await conn.copy_records_to_table("merchants", records=merchants, columns=["id", "name", "currency"])
    stores = [(seed_id("sto", m), seed_id("mer", m), "main") for m in range(MERCHANTS)]
    await conn.copy_records_to_table("stores", records=stores, columns=["id", "merchant_id", "name"])
    products = [(seed_id("prd", m), seed_id("mer", m), "coffee", 450, "JPY") for m in range(MERCHANTS)]
    await conn.copy_records_to_table(
        "products", records=products, columns=["id", "merchant_id", "name", "unit_price", "currency"]
    )
    now = datetime.now(UTC)
    rng = random.Random(7)
    chunk = 100_000
    lines_total = 0
    for start in range(0, ORDERS, chunk):
        orders, lines = [], []
        for n in range(start, min(start + chunk, ORDERS)):
            m = n % MERCHANTS
            order_id = seed_id("ord", n)
            count = 1 + rng.randrange(3)
            total = 0
            for line_no in range(1, count + 1):
                quantity = 1 + rng.randrange(4)
                lines.append(
                    (order_id, line_no, seed_id("mer", m), seed_id("prd", m), "coffee", quantity, 450, 450 * quantity)
                )
                total += 450 * quantity
            created = now - timedelta(seconds=ORDERS - n)
            status = "completed" if n % 4 else "open"
            orders.append((order_id, seed_id("mer", m), seed_id("sto", m), status, total, "JPY", 1, created, created))
        await conn.copy_records_to_table(
            "orders",
            records=orders,
            columns=[
                "id",
                "merchant_id",
                "store_id",
                "status",
                "total_amount",
                "currency",
                "version",
                "created_at",
                "updated_at",
            ],
        )
        await conn.copy_records_to_table(
            "order_lines",
            records=lines,
            columns=[
                "order_id",
                "line_no",
                "merchant_id",
                "product_id",
                "name",
                "quantity",
                "unit_price",
                "line_total",
            ],
        )
        lines_total += len(lines)
    await conn.execute("ANALYZE orders; ANALYZE order_lines")
    return lines_total, time.monotonic() - started


async def checksums(conn: asyncpg.Connection) -> dict[str, tuple[int, str]]:
    result = {}
    for name, sql in CHECKSUM_SQL.items():
        row = await conn.fetchrow(sql)
        result[name] = (row[0], row[1])
    return result


class Writer:
    """The shops: order + lines in one transaction, back to back, for the whole benchmark."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.writes_item_count = False
        self.latencies: list[float] = []
        self.errors: list[str] = []
        self.stop = asyncio.Event()

    async def run(self) -> None:
        conn = await asyncpg.connect(dsn(self.url))
        try:
            n = 0
            while not self.stop.is_set():
                n += 1
                m = n % MERCHANTS
                order_id = f"ord_1W{n:024d}"
                started = time.perf_counter()
                try:
                    async with conn.transaction():
                        if self.writes_item_count:
                            await conn.execute(
                                "INSERT INTO orders (id, merchant_id, store_id, status, total_amount, currency, version,"
                                " created_at, updated_at, item_count) VALUES ($1, $2, $3, 'open', 900, 'JPY', 1, now(), now(), 2)",
                                order_id, seed_id("mer", m), seed_id("sto", m),
                            )  # fmt: skip
                        else:
                            await conn.execute(
                                "INSERT INTO orders (id, merchant_id, store_id, status, total_amount, currency, version,"
                                " created_at, updated_at) VALUES ($1, $2, $3, 'open', 900, 'JPY', 1, now(), now())",
                                order_id, seed_id("mer", m), seed_id("sto", m),
                            )  # fmt: skip
                        await conn.execute(
                            "INSERT INTO order_lines (order_id, line_no, merchant_id, product_id, name, quantity,"
                            " unit_price, line_total) VALUES ($1, 1, $2, $3, 'coffee', 2, 450, 900)",
                            order_id, seed_id("mer", m), seed_id("prd", m),
                        )  # fmt: skip
                except Exception as exc:
                    self.errors.append(type(exc).__name__)
                self.latencies.append(time.perf_counter() - started)
                await asyncio.sleep(0.005)  # ~150 orders/s: a busy chain of shops on one database
        finally:
            await conn.close()


class LockWatch:
    """The longest any backend has been waiting for a lock, sampled from pg_stat_activity."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.longest = 0.0
        self.stop = asyncio.Event()

    async def run(self) -> None:
        conn = await asyncpg.connect(dsn(self.url))
        try:
            while not self.stop.is_set():
                waited = await conn.fetchval(
                    "SELECT coalesce(max(extract(epoch FROM clock_timestamp() - state_change)), 0)"
                    " FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()"
                )
                self.longest = max(self.longest, float(waited))
                await asyncio.sleep(0.01)
        finally:
            await conn.close()


async def step(url: str, action: str, revision: str) -> float:
    started = time.monotonic()
    rc = await asyncio.to_thread(migrate.run, migrate.SERVICES["portal"], action, revision, url)
    if rc:
        raise RuntimeError(f"{action} {revision} failed")
    return time.monotonic() - started


async def main() -> None:
    url = bench_url()
    await recreate(url)
    await step(url, "upgrade", BEFORE)
    conn = await asyncpg.connect(dsn(url))
    try:
        lines, seed_seconds = await seed(conn)
        original = await checksums(conn)
        print(f"seeded {ORDERS:,} orders and {lines:,} lines in {seed_seconds:.1f} s", flush=True)

        writer, watch = Writer(url), LockWatch(url)
        tasks = [asyncio.create_task(writer.run()), asyncio.create_task(watch.run())]
        await asyncio.sleep(1)
        up_expand = await step(url, "upgrade", EXPAND)
        writer.writes_item_count = True  # the application that writes item_count is deployed
        up_rest = await step(url, "upgrade", "head")
        after_up = await checksums(conn)
        wrong = await conn.fetchval(
            "SELECT count(*) FROM orders o WHERE item_count IS DISTINCT FROM"
            " (SELECT sum(quantity) FROM order_lines l WHERE l.order_id = o.id)"
        )
        down_rest = await step(url, "downgrade", EXPAND)
        writer.writes_item_count = False  # the previous application is deployed again
        down_expand = await step(url, "downgrade", BEFORE)
        after_down = await checksums(conn)
        writer.stop.set()
        watch.stop.set()
        await asyncio.gather(*tasks)
    finally:
        await conn.close()

    up, down = up_expand + up_rest, down_rest + down_expand
    latencies = sorted(writer.latencies)
    figures: dict[str, Any] = {
        "orders": ORDERS,
        "order_lines": lines,
        "seed_seconds": round(seed_seconds, 1),
        "seed_rows_per_s": round((ORDERS + lines) / seed_seconds),
        "upgrade_seconds": round(up, 2),
        "upgrade_rows_per_s": round(ORDERS / up),
        "upgrade_phases_seconds": {"expand": round(up_expand, 2), "backfill_and_contract": round(up_rest, 2)},
        "downgrade_seconds": round(down, 2),
        "downgrade_rows_per_s": round(ORDERS / down),
        "writer_transactions": len(latencies),
        "writer_errors": len(writer.errors),
        "writer_worst_ms": round(latencies[-1] * 1000, 1) if latencies else None,
        "writer_p99_ms": round(latencies[int(0.99 * len(latencies))] * 1000, 1) if latencies else None,
        "longest_lock_wait_ms": round(watch.longest * 1000, 1),
        "checksums_match_after_upgrade": after_up == original,
        "checksums_match_after_downgrade": after_down == original,
        "item_count_wrong_rows": wrong,
    }
    save("migrations", figures)
    table(
        f"migrations: orders.item_count expand/backfill/contract on {ORDERS:,} orders ({lines:,} lines)",
        [
            ("seed (COPY)", f"{seed_seconds:.1f} s ({figures['seed_rows_per_s']:,} rows/s)"),
            ("upgrade (expand + backfill + contract)", f"{up:.1f} s ({figures['upgrade_rows_per_s']:,} orders/s)"),
            ("downgrade", f"{down:.2f} s"),
            ("requirement / our goal", "300 s / 30 s each way"),
            ("concurrent writer: transactions, errors", f"{len(latencies)}, {len(writer.errors)}"),
            ("concurrent writer: p99 / worst", f"{figures['writer_p99_ms']} / {figures['writer_worst_ms']} ms"),
            ("longest lock wait seen", f"{figures['longest_lock_wait_ms']} ms (goal: < 1000 ms)"),
            ("row counts and checksums match (up, down)", f"{after_up == original}, {after_down == original}"),
            ("orders with a wrong item_count after upgrade", wrong),
        ],
    )
    if writer.errors:
        print("writer errors:", sorted(set(writer.errors)))


if __name__ == "__main__":
    asyncio.run(main())
