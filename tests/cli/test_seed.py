"""`smartpos seed` as operators run it (its own process, real PostgreSQL and Redis): the same --seed gives the same
content, the data has the shapes of real shops and holds the money invariants, a seeded till signs in and sells,
and production (or a database already seeded) is refused with nothing written."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from tests.support.databases import TestDatabase, drop, migrate_to_head, recreate
from tests.support.databases import test_database as database_for
from tests.support.environment import redis_url
from tests.support.processes import ROOT, ServiceProcess

SMALL = (
    "--merchants",
    "3",
    "--stores-per-merchant",
    "2",
    "--days",
    "14",
    "--orders-per-day",
    "40",
    "--until",
    "2026-11-20",
)
TABLES = (
    "merchants", "stores", "products", "orders", "order_lines", "bills", "payments", "refunds", "shifts",
)  # fmt: skip


def seed(env: dict[str, str], devices: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "smartpos_cli", "seed", "--devices-dir", str(devices), *args],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def pairs() -> Iterator[list[dict[str, str]]]:
    """Three empty sandboxes (a portal and a device-auth database each), migrated."""
    made: list[TestDatabase] = []
    envs = []
    for n in range(3):
        portal, auth = database_for("portal", f"_seed{n}"), database_for("device-auth", f"_seed{n}")
        for db in (portal, auth):
            asyncio.run(recreate(db))
            migrate_to_head(db)
            made.append(db)
        envs.append(
            {portal.env_var: portal.url, auth.env_var: auth.url, "REDIS_URL": redis_url(), "SMARTPOS_ENV": "staging"}
        )
    yield envs
    asyncio.run(drop(*made))


async def content(env: dict[str, str]) -> dict[str, list[str]]:
    dumped = {}
    for var, tables in (("PORTAL_DATABASE_URL", TABLES), ("AUTH_DATABASE_URL", ("devices", "known_stores"))):
        conn = await asyncpg.connect(env[var].replace("+asyncpg", ""))
        try:
            for table in tables:
                rows = await conn.fetch(f"SELECT t::text AS row FROM {table} t ORDER BY 1")
                dumped[table] = [r["row"] for r in rows]
        finally:
            await conn.close()
    return dumped


def test_the_same_seed_gives_the_same_sandbox(pairs: list[dict[str, str]], tmp_path: Path) -> None:
    first, second, other = (seed(env, tmp_path / f"devices{n}", "--seed", s, *SMALL)
                            for n, (env, s) in enumerate(zip(pairs, ("7", "7", "8"), strict=True)))  # fmt: skip
    for result in (first, second, other):
        assert result.returncode == 0, result.stdout + result.stderr
        assert "rows/s" in result.stdout
    a, b, c = (asyncio.run(content(env)) for env in pairs)
    assert a == b
    assert a["orders"] != c["orders"] and a["devices"] != c["devices"]
    assert len(a["orders"]) > 1_000
    files = [sorted((tmp_path / f"devices{n}").iterdir()) for n in range(2)]
    assert [f.name for f in files[0]] == [f.name for f in files[1]] and len(files[0]) == 12  # 2 tills x 6 stores
    assert all(x.read_text() == y.read_text() for x, y in zip(*files, strict=True))  # the same keys too


async def shapes(env: dict[str, str]) -> dict[str, Any]:
    conn = await asyncpg.connect(env["PORTAL_DATABASE_URL"].replace("+asyncpg", ""))
    try:
        return {
            "currencies": await conn.fetchval("SELECT count(DISTINCT currency) FROM merchants"),
            "timezones": await conn.fetchval("SELECT count(DISTINCT timezone) FROM stores"),
            # local hour of each sale: breakfast and lunch are busier than mid-afternoon
            "by_hour": dict(
                await conn.fetch(
                    "SELECT extract(hour FROM o.created_at AT TIME ZONE s.timezone)::int, count(*) FROM orders o"
                    " JOIN stores s ON s.id = o.store_id GROUP BY 1"
                )
            ),
            "weekend_vs_weekday": await conn.fetchval(
                "SELECT (avg(n) FILTER (WHERE dow IN (0, 6))) / avg(n) FILTER (WHERE dow IN (1, 2)) FROM ("
                " SELECT extract(dow FROM o.created_at AT TIME ZONE s.timezone) AS dow, s.id,"
                " (o.created_at AT TIME ZONE s.timezone)::date AS d, count(*) AS n FROM orders o"
                " JOIN stores s ON s.id = o.store_id GROUP BY 1, 2, 3) per_day"
            ),
            "methods": {r[0] for r in await conn.fetch("SELECT DISTINCT method FROM payments")},
            "split_bills": await conn.fetchval(
                "SELECT count(*) FROM (SELECT bill_id FROM payments GROUP BY 1 HAVING count(DISTINCT method) = 2) s"
            ),
            # money invariants: every order's lines add up, every bill is paid by its payments, refunds within
            "lines_off": await conn.fetchval(
                "SELECT count(*) FROM orders o WHERE total_amount <>"
                " (SELECT sum(line_total) FROM order_lines l WHERE l.order_id = o.id)"
            ),
            "bills_off": await conn.fetchval(
                "SELECT count(*) FROM bills b WHERE paid_amount <> (SELECT sum(amount) FROM payments p"
                " WHERE p.bill_id = b.id AND p.status = 'succeeded') OR refunded_amount <>"
                " (SELECT coalesce(sum(amount), 0) FROM refunds r WHERE r.bill_id = b.id)"
            ),
            "refunds": await conn.fetchval("SELECT count(*) FROM refunds"),
            "prices_ending_in_test_values": await conn.fetchval(
                "SELECT count(*) FROM products WHERE unit_price % 10 <> 0"
            ),
        }
    finally:
        await conn.close()


def test_seeded_shops_look_real_and_hold_the_money_invariants(pairs: list[dict[str, str]], tmp_path: Path) -> None:
    result = seed(pairs[0], tmp_path, "--seed", "3", *SMALL)
    assert result.returncode == 0, result.stderr
    found = asyncio.run(shapes(pairs[0]))
    assert found["currencies"] == 3 and found["timezones"] >= 3
    by_hour = found["by_hour"]
    assert isinstance(by_hour, dict) and set(by_hour) <= set(range(7, 21))
    assert by_hour[8] > 1.5 * by_hour[15] and by_hour[12] > 1.5 * by_hour[15]
    assert float(found["weekend_vs_weekday"]) > 1.15
    assert found["methods"] == {"card", "cash", "qr"} and found["split_bills"] > 0
    assert found["lines_off"] == 0 and found["bills_off"] == 0 and found["refunds"] > 0
    assert found["prices_ending_in_test_values"] == 0


def test_production_and_a_second_seed_are_refused_with_nothing_written(
    pairs: list[dict[str, str]], tmp_path: Path
) -> None:
    production = seed({**pairs[1], "SMARTPOS_ENV": "production"}, tmp_path / "p", "--seed", "5", *SMALL)
    assert production.returncode == 2 and "sandbox only" in production.stderr
    assert asyncio.run(content(pairs[1]))["merchants"] == [] and not (tmp_path / "p").exists()
    assert seed(pairs[1], tmp_path / "d", "--seed", "5", *SMALL).returncode == 0
    before = asyncio.run(content(pairs[1]))
    again = seed(pairs[1], tmp_path / "d", "--seed", "5", *SMALL)
    assert again.returncode == 1 and "already holds this seed" in again.stderr
    assert asyncio.run(content(pairs[1])) == before


def test_a_seeded_till_signs_in_and_sells(
    pairs: list[dict[str, str]], service_env: dict[str, str], tmp_path: Path
) -> None:
    env = pairs[2]
    assert seed(env, tmp_path, "--seed", "11", *SMALL).returncode == 0
    device_file = sorted(tmp_path.iterdir())[0]
    stack_env = {
        **service_env,
        "PORTAL_DATABASE_URL": env["PORTAL_DATABASE_URL"],
        "AUTH_DATABASE_URL": env["AUTH_DATABASE_URL"],
    }
    auth, portal = ServiceProcess("device-auth", stack_env), ServiceProcess("portal", stack_env)
    for proc in (auth, portal):
        proc.env.update(
            {"SMARTPOS_AUTH_ISSUER": auth.url, "SMARTPOS_PGW_MODE": "mock", "PORTAL_PORT": str(portal.port)}
        )
    try:
        auth.start()
        portal.start()
        sold = subprocess.run(
            [sys.executable, "-m", "smartpos_cli", "terminal", "run", "split-tender", "--device-file", str(device_file),
             "--portal-url", portal.url, "--auth-url", auth.url],
            cwd=ROOT, env=os.environ.copy(), capture_output=True, text=True, timeout=90,
        )  # fmt: skip
        assert sold.returncode == 0, sold.stdout + sold.stderr
        assert "status=completed" in sold.stdout or "done: split-tender" in sold.stdout
        assert json.loads(device_file.read_text())["device_id"] in sold.stdout
    finally:
        portal.stop()
        auth.stop()
