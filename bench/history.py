"""Past orders for the history phase of `make bench`: a realistic backlog written with COPY, fast.

Each past order has 1-3 lines priced from its merchant's catalog, a paid bill and one succeeded card or cash
payment, and a creation time spread over the last 90 days with ids whose ULID time matches (so they sort, and
paginate, as real history would). They belong to the benchmark's own merchants and stores, so the checkout that
follows reads and writes the same per-merchant index ranges a real shop with that history would.
"""

from __future__ import annotations

import random
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from ulid import ULID

DAYS = 90
CHUNK = 50_000


def _ulid_at(moment: datetime, rng: random.Random) -> str:
    return str(ULID.from_timestamp(moment.timestamp()))[:10] + "".join(
        rng.choice("0123456789ABCDEFGHJKMNPQRSTVWXYZ") for _ in range(16)
    )


async def seed_past_orders(dsn: str, merchants: list[dict[str, Any]], total: int, seed: int = 7) -> dict[str, Any]:
    """Write `total` completed past orders (with lines, bills and payments) spread over `merchants`."""
    rng = random.Random(seed)
    now = datetime.now(UTC)
    started = time.monotonic()
    conn = await asyncpg.connect(dsn)
    try:
        # Consistent by construction: skip the per-row foreign-key triggers while copying (superuser only; the
        # benchmark's own database). Indexes are maintained as usual.
        await conn.execute("SET session_replication_role = replica")
        prices = {
            row["id"]: (row["name"], row["unit_price"], row["currency"])
            for row in await conn.fetch(
                "SELECT id, name, unit_price, currency FROM products WHERE merchant_id = ANY($1::text[])",
                [m["id"] for m in merchants],
            )
        }
        written = 0
        while written < total:
            size = min(CHUNK, total - written)
            orders, lines, bills, payments = [], [], [], []
            for _ in range(size):
                merchant = merchants[rng.randrange(len(merchants))]
                created = now - timedelta(seconds=rng.uniform(3600, DAYS * 86400))
                ulid = _ulid_at(created, rng)
                order_id, bill_id, payment_id = f"ord_{ulid}", f"bil_{ulid}", f"pay_{ulid}"
                chosen = rng.sample(merchant["products"], rng.randint(1, min(3, len(merchant["products"]))))
                total_amount, item_count = 0, 0
                for line_no, product_id in enumerate(chosen, start=1):
                    name, unit_price, currency = prices[product_id]
                    quantity = rng.randint(1, 3)
                    total_amount += unit_price * quantity
                    item_count += quantity
                    lines.append(
                        (
                            order_id,
                            line_no,
                            merchant["id"],
                            product_id,
                            name,
                            quantity,
                            unit_price,
                            unit_price * quantity,
                        )
                    )
                done = created + timedelta(seconds=rng.uniform(20, 600))
                store_id = merchant["store"]
                orders.append(
                    (order_id, merchant["id"], store_id, "completed", total_amount, currency, 2, created, done, done,
                     None, item_count)
                )  # fmt: skip
                bills.append(
                    (bill_id, merchant["id"], store_id, order_id, "paid", total_amount, total_amount, currency, done, 2,
                     created, done)
                )  # fmt: skip
                method = rng.choice(("card", "card", "qr", "cash"))
                reference = None if method == "cash" else f"pgwref_{ulid}"
                payments.append(
                    (payment_id, merchant["id"], store_id, bill_id, order_id, total_amount, currency, method,
                     "succeeded", reference, None, 2, created, done)
                )  # fmt: skip
            async with conn.transaction():
                await conn.copy_records_to_table(
                    "orders",
                    records=orders,
                    columns=[
                        "id", "merchant_id", "store_id", "status", "total_amount", "currency", "version", "created_at",
                        "updated_at", "completed_at", "canceled_at", "item_count",
                    ],
                )  # fmt: skip
                await conn.copy_records_to_table(
                    "order_lines",
                    records=lines,
                    columns=[
                        "order_id", "line_no", "merchant_id", "product_id", "name", "quantity", "unit_price",
                        "line_total",
                    ],
                )  # fmt: skip
                await conn.copy_records_to_table(
                    "bills",
                    records=bills,
                    columns=[
                        "id", "merchant_id", "store_id", "order_id", "status", "total_amount", "paid_amount",
                        "currency", "paid_at", "version", "created_at", "updated_at",
                    ],
                )  # fmt: skip
                await conn.copy_records_to_table(
                    "payments",
                    records=payments,
                    columns=[
                        "id", "merchant_id", "store_id", "bill_id", "order_id", "amount", "currency", "method",
                        "status", "pgw_reference", "failure_reason", "version", "created_at", "updated_at",
                    ],
                )  # fmt: skip
            written += size
        await conn.execute("ANALYZE orders, order_lines, bills, payments")
        orders_in_db = await conn.fetchval("SELECT count(*) FROM orders")
    finally:
        await conn.close()
    return {"past_orders": total, "orders_in_database": orders_in_db, "seconds": round(time.monotonic() - started, 1)}
