"""`smartpos seed`: a sandbox that looks like real shops (API.md "Sandbox"; sandbox only).

Merchants in several countries (currency, locale, store timezones), each with a café catalog priced in its own
currency, two tills per store (their private keys written to device files), and weeks of order history shaped
like a café's days: busier at breakfast, lunch and after work, busier on Fridays and weekends. Card, cash, qr and
split-tender payments, a few refunds, one cash drawer shift per store and day. The mock gateway's settlement
report (Redis) holds what it would have settled, so the overnight run's reconciliation balances.

Everything follows from `--seed` (and the last day, `--until`): the same arguments give the same rows, the same ids
and the same keys. Rows go in with COPY, one transaction per database; seeding a database that already holds
this seed's merchants is refused. The overnight run (`make run` starts a scheduler) then seals every past day.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from cryptography.hazmat.primitives.asymmetric import ec
from faker import Faker
from ulid import ULID

from smartpos_terminal import DeviceFile, DeviceKey

# (Faker locale, currency, store timezones, price factor from the base prices below)
COUNTRIES: tuple[tuple[str, str, tuple[str, ...], float], ...] = (
    ("ja_JP", "JPY", ("Asia/Tokyo",), 1.1),
    ("en_US", "USD", ("America/New_York", "America/Chicago", "America/Los_Angeles"), 1.0),
    ("de_DE", "EUR", ("Europe/Berlin",), 0.95),
    ("en_GB", "GBP", ("Europe/London",), 0.8),
    ("en_AU", "AUD", ("Australia/Sydney",), 1.5),
)
MINOR = {"JPY": 0, "USD": 2, "EUR": 2, "GBP": 2, "AUD": 2}
# A café's menu, base prices in dollars.
MENU = (
    ("Espresso", 3.0), ("Americano", 3.4), ("Cappuccino", 4.2), ("Flat white", 4.4), ("Latte", 4.5),
    ("Matcha latte", 5.0), ("Chai latte", 4.8), ("Iced coffee", 4.0), ("Croissant", 3.2), ("Pain au chocolat", 3.6),
    ("Cinnamon roll", 3.8), ("Banana bread", 3.9), ("Bagel with cream cheese", 4.9), ("Avocado toast", 9.5),
    ("Club sandwich", 11.0), ("Soup of the day", 7.5), ("Cheesecake", 5.5), ("Cookie", 2.4),
    ("Still water", 2.0), ("Orange juice", 4.0),
)  # fmt: skip
# Orders per local hour of the trading day (07:00-20:59), relative; and per weekday (Monday first).
HOURS = {7: 4, 8: 10, 9: 8, 10: 5, 11: 6, 12: 10, 13: 9, 14: 5, 15: 5, 16: 5, 17: 6, 18: 7, 19: 4, 20: 2}
WEEKDAYS = (0.9, 0.9, 1.0, 1.0, 1.15, 1.3, 1.1)
OPEN, CLOSE = time(6, 45), time(21, 30)  # the drawer's shift (inside the business day: days close at 04:00)


@dataclass(frozen=True)
class Plan:
    seed: int = 1
    merchants: int = 3
    stores_per_merchant: int = 2
    days: int = 28
    orders_per_day: int = 80
    until: date | None = None  # the last business date seeded (default: yesterday, UTC)
    tills_per_store: int = 2

    def last_day(self) -> date:
        return self.until or (datetime.now(UTC).date() - timedelta(days=1))


@dataclass
class Rows:
    """Every row to COPY, per table, in insertion order; and what goes outside PostgreSQL."""

    portal: dict[str, list[tuple[Any, ...]]] = field(default_factory=dict)
    auth: dict[str, list[tuple[Any, ...]]] = field(default_factory=dict)
    settlements: list[tuple[str, dict[str, Any]]] = field(default_factory=list)  # (store, settlement entry)
    devices: list[DeviceFile] = field(default_factory=list)

    def add(self, table: str, row: tuple[Any, ...], *, auth: bool = False) -> None:
        (self.auth if auth else self.portal).setdefault(table, []).append(row)

    def count(self) -> int:
        return sum(len(rows) for rows in (*self.portal.values(), *self.auth.values()))


COLUMNS: dict[str, tuple[str, ...]] = {
    "merchants": ("id", "name", "currency", "created_at", "offline_max_age_hours"),
    "stores": ("id", "merchant_id", "name", "created_at", "timezone", "day_closes_at"),
    "products": ("id", "merchant_id", "name", "sku", "unit_price", "currency", "created_at"),
    "orders": (
        "id", "merchant_id", "store_id", "status", "total_amount", "currency", "version", "created_at", "updated_at",
        "completed_at", "item_count", "refunded_amount", "device_id",
    ),
    "order_lines": ("order_id", "line_no", "merchant_id", "product_id", "name", "quantity", "unit_price", "line_total"),
    "bills": (
        "id", "merchant_id", "store_id", "order_id", "status", "total_amount", "paid_amount", "currency", "paid_at",
        "version", "created_at", "updated_at", "refunded_amount",
    ),
    "payments": (
        "id", "merchant_id", "store_id", "bill_id", "order_id", "amount", "currency", "method", "status",
        "pgw_reference", "version", "created_at", "updated_at", "refunded_amount", "device_id", "succeeded_at",
    ),
    "refunds": (
        "id", "merchant_id", "store_id", "order_id", "bill_id", "payment_id", "amount", "currency", "method",
        "status", "reason", "pgw_reference", "version", "created_at", "updated_at",
    ),
    "shifts": (
        "id", "merchant_id", "store_id", "status", "currency", "opening_float", "opened_by", "opened_at", "closed_at",
        "paid_in", "paid_out", "cash_sales", "cash_refunds", "expected_cash", "counted_cash", "difference", "version",
    ),
    "devices": ("id", "merchant_id", "store_id", "name", "status", "jwks", "version", "created_at", "updated_at"),
    "known_stores": ("store_id", "merchant_id", "learnt_at"),
}  # fmt: skip
PORTAL_TABLES = ("merchants", "stores", "products", "orders", "order_lines", "bills", "payments", "refunds", "shifts")
AUTH_TABLES = ("known_stores", "devices")


class Generator:
    """Draws everything from one random stream (`random.Random(seed)`) and one Faker seeded from it."""

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self.rng = random.Random(plan.seed)  # noqa: S311 - deterministic sandbox data by design (sandbox keys too)
        self.rows = Rows()

    def id(self, prefix: str, at: datetime) -> str:
        """A prefixed ULID at `at` (milliseconds) with random bits from the seed: ids sort by time, as live ones."""
        millis = int(at.timestamp() * 1000)
        return f"{prefix}_{ULID.from_bytes(millis.to_bytes(6, 'big') + self.rng.randbytes(10))}"

    def key(self, kid: str) -> DeviceKey:
        secret = self.rng.getrandbits(255) | 1  # below the P-256 group order: a valid private value
        return DeviceKey(ec.derive_private_key(secret, ec.SECP256R1()), kid)

    def run(self, progress: Callable[[int], None] = lambda _: None) -> Rows:
        first_day = self.plan.last_day() - timedelta(days=self.plan.days - 1)
        for n in range(self.plan.merchants):
            locale, currency, zones, factor = COUNTRIES[n % len(COUNTRIES)]
            fake = Faker(locale)
            fake.seed_instance(self.rng.getrandbits(32))
            opened = datetime.combine(first_day - timedelta(days=7), time(9), UTC)
            merchant_id = self.id("mer", opened)
            self.rows.add("merchants", (merchant_id, f"{fake.last_name()} Coffee", currency, opened, 24))
            products = self.catalog(merchant_id, currency, factor, opened)
            for s in range(self.plan.stores_per_merchant):
                zone = zones[s % len(zones)]
                store_id = self.id("sto", opened)
                self.rows.add("stores", (store_id, merchant_id, f"{fake.city()} {fake.street_name()}"[:120], opened,
                                         zone, time(4)))  # fmt: skip
                self.rows.add("known_stores", (store_id, merchant_id, opened), auth=True)
                tills = self.tills(merchant_id, store_id, opened, products)
                busy = self.rng.uniform(0.7, 1.3)  # some stores are busier than others
                for d in range(self.plan.days):
                    self.day(merchant_id, store_id, currency, ZoneInfo(zone), first_day + timedelta(days=d), products,
                             tills, busy)  # fmt: skip
                    progress(1)
        return self.rows

    def catalog(self, merchant_id: str, currency: str, factor: float, at: datetime) -> list[tuple[str, str, int]]:
        """The menu in the merchant's currency, prices rounded to 10 minor units (so no total ever ends in one of
        the mock gateway's test values: docs/sandbox.md)."""
        products = []
        for number, (name, base) in enumerate(MENU, 1):
            major = 100 if currency == "JPY" else 10 ** MINOR[currency]  # yen: about a hundred to the dollar
            price = max(10, round(base * factor * major / 10) * 10)
            product_id = self.id("prd", at)
            self.rows.add("products", (product_id, merchant_id, name, f"SKU-{number:04d}", price, currency, at))
            products.append((product_id, name, price))
        return products

    def tills(
        self, merchant_id: str, store_id: str, at: datetime, products: Sequence[tuple[str, str, int]]
    ) -> list[str]:
        ids = []
        for t in range(1, self.plan.tills_per_store + 1):
            device_id = self.id("dev", at)
            key = self.key(f"till-{t}")
            jwks = json.dumps({"keys": [key.public_jwk]})
            self.rows.add("devices", (device_id, merchant_id, store_id, f"till {t}", "active", jwks, 1, at, at),
                          auth=True)  # fmt: skip
            listed = tuple({"id": p, "name": n, "unit_price": price} for p, n, price in products)
            self.rows.devices.append(DeviceFile(device_id, merchant_id, store_id, key.kid, key.pem(), listed))
            ids.append(device_id)
        return ids

    def moments(self, day: date, zone: ZoneInfo, count: int) -> Iterator[datetime]:
        hours = self.rng.choices(list(HOURS), weights=list(HOURS.values()), k=count)
        local = sorted(
            datetime.combine(day, time(h, self.rng.randrange(60), self.rng.randrange(60)), zone) for h in hours
        )
        return (moment.astimezone(UTC) for moment in local)

    def day(
        self,
        merchant_id: str,
        store_id: str,
        currency: str,
        zone: ZoneInfo,
        day: date,
        products: Sequence[tuple[str, str, int]],
        tills: Sequence[str],
        busy: float,
    ) -> None:
        mean = self.plan.orders_per_day * WEEKDAYS[day.weekday()] * busy
        count = max(0, round(self.rng.gauss(mean, mean * 0.1)))
        opened_at = datetime.combine(day, OPEN, zone).astimezone(UTC)
        closed_at = datetime.combine(day, CLOSE, zone).astimezone(UTC)
        cash_in = cash_out = 0
        for at in self.moments(day, zone, count):
            sold, back = self.order(merchant_id, store_id, currency, at, products, self.rng.choice(tills))
            cash_in, cash_out = cash_in + sold, cash_out + back
        float_ = 200 * 10 ** MINOR[currency] if currency != "JPY" else 20_000
        expected = float_ + cash_in - cash_out
        counted = expected + (self.rng.choice((-1, 1)) * 10 ** MINOR[currency] if self.rng.random() < 0.08 else 0)
        self.rows.add(
            "shifts",
            (self.id("shf", opened_at), merchant_id, store_id, "closed", currency, float_, tills[0], opened_at,
             closed_at, 0, 0, cash_in, cash_out, expected, counted, counted - expected, 2),
        )  # fmt: skip

    def order(
        self,
        merchant_id: str,
        store_id: str,
        currency: str,
        at: datetime,
        products: Sequence[tuple[str, str, int]],
        till: str,
    ) -> tuple[int, int]:
        """One completed sale (and maybe its refund); answers the cash it took in and gave back."""
        rng = self.rng
        order_id = self.id("ord", at)
        picked = rng.sample(list(products), k=rng.choices((1, 2, 3, 4), weights=(35, 40, 18, 7))[0])
        lines = [(p, name, rng.choices((1, 2, 3), weights=(80, 17, 3))[0], price) for p, name, price in picked]
        total = sum(q * price for _, _, q, price in lines)
        paid_at = at + timedelta(seconds=rng.randint(15, 90))
        for line_no, (product_id, name, quantity, price) in enumerate(lines, 1):
            self.rows.add("order_lines", (order_id, line_no, merchant_id, product_id, name, quantity, price,
                                          quantity * price))  # fmt: skip
        bill_id = self.id("bil", at + timedelta(seconds=5))
        roll = rng.random()
        tenders = (
            [("card", total)] if roll < 0.55 else [("cash", total)] if roll < 0.83 else [("qr", total)] if roll < 0.95
            else [("card", total - total // 2 // 10 * 10), ("cash", total // 2 // 10 * 10)]
        )  # fmt: skip
        tenders = [(method, amount) for method, amount in tenders if amount > 0]
        # One in fifty sales has its first item given back, on the first tender.
        refunded = min(lines[0][3], tenders[0][1]) if rng.random() < 0.02 else 0
        cash_in = sum(amount for method, amount in tenders if method == "cash")
        cash_out = 0
        for n, (method, amount) in enumerate(tenders):
            created = at + timedelta(seconds=10 + n * 20)
            payment_id = self.id("pay", created)
            reference = None if method == "cash" else f"pgwref_{ULID.from_bytes(self.rng.randbytes(16))}"
            back = refunded if n == 0 else 0
            self.rows.add(
                "payments",
                (payment_id, merchant_id, store_id, bill_id, order_id, amount, currency, method, "succeeded", reference,
                 2 + (1 if back else 0), created, paid_at, back, till, paid_at),
            )  # fmt: skip
            if reference is not None:
                self.settle(store_id, "payment", reference, amount, paid_at)
            if back:
                refund_at = paid_at + timedelta(minutes=rng.randint(2, 40))
                refund_ref = None if method == "cash" else f"pgwref_{ULID.from_bytes(self.rng.randbytes(16))}"
                self.rows.add(
                    "refunds",
                    (self.id("ref", refund_at), merchant_id, store_id, order_id, bill_id, payment_id, back, currency,
                     method, "succeeded", "customer returned it", refund_ref, 2, refund_at, refund_at),
                )  # fmt: skip
                if refund_ref is not None:
                    self.settle(store_id, "refund", refund_ref, back, refund_at)
                if method == "cash":
                    cash_out += back
        version = 3 if refunded else 2
        self.rows.add(
            "bills",
            (bill_id, merchant_id, store_id, order_id, "paid", total, total, currency, paid_at, version,
             at + timedelta(seconds=5), paid_at, refunded),
        )  # fmt: skip
        self.rows.add(
            "orders",
            (order_id, merchant_id, store_id, "completed", total, currency, version, at, paid_at, paid_at,
             sum(q for _, _, q, _ in lines), refunded, till),
        )  # fmt: skip
        return cash_in, cash_out

    def settle(self, store_id: str, kind: str, reference: str, amount: int, at: datetime) -> None:
        entry = {"kind": kind, "pgw_reference": reference, "amount": amount, "settled_at": at.isoformat()}
        self.rows.settlements.append((store_id, entry))


async def write(rows: Rows, portal_dsn: str, auth_dsn: str, redis_url: str, step: Callable[[str, int], None]) -> None:
    """COPY every table, one transaction per database (device-auth's committed first: a portal that has the
    stores never lacks their tills); then the mock gateway's settlement ledger."""
    import asyncpg
    import redis.asyncio as aioredis

    from portal.pgw.settlement import KEEP_SECONDS, SettlementLedger

    portal = await asyncpg.connect(portal_dsn)
    auth = await asyncpg.connect(auth_dsn)
    try:
        first = rows.portal["merchants"][0][0]
        if await portal.fetchval("SELECT 1 FROM merchants WHERE id = $1", first):
            raise SeedRefused(f"this database already holds this seed's data (merchant {first}): use another --seed")
        async with portal.transaction(), auth.transaction():
            for table in PORTAL_TABLES:
                await portal.copy_records_to_table(table, records=rows.portal.get(table, []), columns=COLUMNS[table])
                step(table, len(rows.portal.get(table, [])))
            for table in AUTH_TABLES:
                records = rows.auth.get(table, [])
                await auth.copy_records_to_table(table, records=records, columns=COLUMNS[table])
                step(table, len(records))
    finally:
        await portal.close()
        await auth.close()
    redis = aioredis.Redis.from_url(redis_url)
    try:
        async with redis.pipeline(transaction=False) as pipe:
            for store_id, entry in rows.settlements:
                key = SettlementLedger.key(store_id)
                pipe.zadd(
                    key, {json.dumps(entry, sort_keys=True): datetime.fromisoformat(entry["settled_at"]).timestamp()}
                )
                pipe.expire(key, KEEP_SECONDS)
            await pipe.execute()
        step("settlement ledger", len(rows.settlements))
    finally:
        await redis.aclose()  # type: ignore[attr-defined]  # redis 5 (types-redis describes 4)


class SeedRefused(RuntimeError):
    """Seeding would be wrong here (production, or already seeded)."""
