"""`make bench-seed`: how long `smartpos seed` takes, and its rows/s, at the default size and bigger.

    scripts/uv run python bench/seed.py
    BENCH_SEED_SIZES=3x2x28x80,10x5x28x80 scripts/uv run python bench/seed.py     # MERCHANTSxSTORESxDAYSxORDERS

What runs, per size: two databases of the benchmark's own (`smartpos_bench_seed_portal`, `smartpos_bench_seed_auth`
on the configured PostgreSQL server; created, migrated with the real migrations, dropped at the end), then
`smartpos seed --seed 1 --until 2026-11-20` as operators run it — one process, its own wall time (interpreter
start-up included) and the seconds and rows/s it reports itself (generation + COPY + the Redis settlement ledger).
Writes the figures to bench-results.json under `seed`.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import ROOT, reference_ms, save, table

SIZES = [
    tuple(int(n) for n in s.split("x")) for s in os.environ.get("BENCH_SEED_SIZES", "3x2x28x80,10x5x28x80").split(",")
]
NAMES = {"PORTAL_DATABASE_URL": "smartpos_bench_seed_portal", "AUTH_DATABASE_URL": "smartpos_bench_seed_auth"}
DEFAULT = "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"


def url_of(var: str) -> str:
    base = urlsplit(os.environ.get(var) or DEFAULT)
    return urlunsplit(base._replace(path=f"/{NAMES[var]}"))


async def recreate(drop_only: bool = False) -> None:
    server = urlsplit(url_of("PORTAL_DATABASE_URL").replace("+asyncpg", ""))._replace(path="/postgres").geturl()
    conn = await asyncpg.connect(server)
    try:
        for name in NAMES.values():
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            if not drop_only:
                await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()


def smartpos(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "smartpos_cli", *args], cwd=ROOT, env={**os.environ, **env}, capture_output=True,
        text=True, check=True,
    )  # fmt: skip


def main() -> None:
    env = {var: url_of(var) for var in NAMES}
    results: list[dict[str, Any]] = []
    for merchants, stores, days, orders in SIZES:
        asyncio.run(recreate())
        smartpos("migrate", "portal", "upgrade", "head", env=env)
        smartpos("migrate", "device-auth", "upgrade", "head", env=env)
        reference = reference_ms()
        started = time.perf_counter()
        with tempfile.TemporaryDirectory() as devices:
            out = smartpos(
                "seed", "--seed", "1", "--until", "2026-11-20", "--merchants", str(merchants), "--stores-per-merchant",
                str(stores), "--days", str(days), "--orders-per-day", str(orders), "--devices-dir", devices, env=env,
            ).stdout  # fmt: skip
        wall = time.perf_counter() - started
        found = re.search(r"seeded ([\d,]+) rows in ([\d.]+) s \(([\d,]+) rows/s\)", out)
        assert found, out
        figures = {
            "size": f"{merchants} merchants x {stores} stores x {days} days x {orders} orders/day",
            "rows": int(found.group(1).replace(",", "")),
            "seed_seconds": float(found.group(2)),
            "rows_per_second": int(found.group(3).replace(",", "")),
            "process_seconds": round(wall, 2),
            "reference_ms": reference,
            "summary": out.strip().splitlines()[-2],
        }
        results.append(figures)
        table(f"smartpos seed: {figures['size']}", [(k, v) for k, v in figures.items()])
    asyncio.run(recreate(drop_only=True))
    save("seed", {"sizes": results})


if __name__ == "__main__":
    main()
