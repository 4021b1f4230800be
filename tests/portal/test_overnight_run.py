"""The overnight run as operators run it: `python -m portal.scheduler` processes against the real PostgreSQL —
two at once seal every day once, one killed half-way and run again ends exactly where an uninterrupted run ends,
the dry run shows what the real run writes, and payments pending too long are expired."""

from __future__ import annotations

import json
import signal
import time
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from itertools import pairwise
from typing import Any

from fastapi import FastAPI
from sqlalchemy import text

from portal.closeout.business_day import BusinessDay
from portal.closeout.zreport import instant
from smartpos_shared.ids import new_id
from tests.support.portal_fixtures import scheduler

DAYS = 3
UTC_DAY = BusinessDay("UTC")
IGNORED = {"id", "merchant_id", "store_id", "created_at", "hash", "previous_hash"}


async def seed(app: FastAPI, stores: int, orders_per_store: int, base: datetime) -> str:
    """A merchant whose `stores` stores opened `DAYS` days before `base`, each with cash and card sales (and a
    few refunds) spread over those days — the same shape for every call with the same arguments."""
    merchant_id = new_id("mer")
    async with app.state.engine.begin() as conn:
        await conn.execute(
            text("INSERT INTO merchants (id, name, currency) VALUES (:m, 'Overnight', 'JPY')"), {"m": merchant_id}
        )
        opened = base - timedelta(days=DAYS)
        for s in range(stores):
            store_id = new_id("sto")
            await conn.execute(
                text(
                    "INSERT INTO stores (id, merchant_id, name, created_at, timezone, day_closes_at)"
                    " VALUES (:s, :m, :name, :opened, 'UTC', '04:00')"
                ),
                {"s": store_id, "m": merchant_id, "name": f"store {s}", "opened": opened},
            )
            await conn.execute(
                text(
                    """
                    WITH k AS (
                      SELECT CAST(:s AS text) AS s, CAST(:m AS text) AS m, CAST(:n AS int) AS n,
                             CAST(:opened AS timestamptz) AS opened, CAST(:orders AS int) AS orders,
                             CAST(:span AS int) AS span
                    ), o AS (
                      INSERT INTO orders (id, merchant_id, store_id, status, total_amount, currency, version,
                                          created_at, updated_at, completed_at, item_count)
                      SELECT k.s || '_o' || g, k.m, k.s, 'completed', 100 + g * 10 + k.n, 'JPY', 2,
                             k.opened + g * (interval '1 minute' * (k.span / k.orders)),
                             k.opened + g * (interval '1 minute' * (k.span / k.orders)),
                             k.opened + g * (interval '1 minute' * (k.span / k.orders)), 1
                      FROM k, generate_series(1, k.orders) g RETURNING id, total_amount, completed_at
                    ), b AS (
                      INSERT INTO bills (id, merchant_id, store_id, order_id, status, total_amount, paid_amount,
                                         currency, paid_at, version, created_at, updated_at)
                      SELECT o.id || '_b', k.m, k.s, o.id, 'paid', o.total_amount, o.total_amount, 'JPY',
                             o.completed_at, 2, o.completed_at, o.completed_at FROM o, k RETURNING id, order_id
                    )
                    INSERT INTO payments (id, merchant_id, store_id, bill_id, order_id, amount, currency, method,
                                          status, pgw_reference, version, created_at, updated_at, succeeded_at)
                    SELECT o.id || '_p', k.m, k.s, o.id || '_b', o.id, o.total_amount, 'JPY',
                           CASE WHEN right(o.id, 1) IN ('1', '4', '7') THEN 'cash' ELSE 'card' END, 'succeeded',
                           CASE WHEN right(o.id, 1) IN ('1', '4', '7') THEN NULL ELSE 'ref_' || o.id END, 2,
                           o.completed_at, o.completed_at, o.completed_at
                    FROM o, k
                    """
                ),
                {
                    "s": store_id,
                    "m": merchant_id,
                    "n": s,
                    "opened": opened,
                    "orders": orders_per_store,
                    "span": (DAYS * 24 - 2) * 60,
                },
            )
            # Every tenth payment partly refunded in cash, an hour later.
            await conn.execute(
                text(
                    """
                    INSERT INTO refunds (id, merchant_id, store_id, order_id, bill_id, payment_id, amount, currency,
                                         method, status, version, created_at, updated_at)
                    SELECT p.id || '_r', p.merchant_id, p.store_id, p.order_id, p.bill_id, p.id, 10, 'JPY', 'cash',
                           'succeeded', 1, p.succeeded_at + interval '1 hour', p.succeeded_at + interval '1 hour'
                    FROM payments p WHERE p.store_id = :s AND p.merchant_id = :m AND right(p.order_id, 1) = '0'
                    """
                ),
                {"s": store_id, "m": merchant_id},
            )
        # Every store runs a daily credit programme (100 a day, 150 carried over) for one enrolled account: the
        # overnight run writes its entries in each sealed day's own transaction.
        await conn.execute(
            text(
                """
                WITH a AS (
                  INSERT INTO credit_accounts (id, merchant_id, customer_ref, currency, balance, version, created_at,
                                               updated_at)
                  SELECT 'cra_' || substr(s.id, 5), s.merchant_id, s.name, 'JPY', 0, 1, now(), now()
                  FROM stores s WHERE s.merchant_id = :m RETURNING id, merchant_id, customer_ref
                ), p AS (
                  INSERT INTO credit_programmes (id, merchant_id, store_id, name, allocation_amount, period,
                                                 carry_over_max, created_at)
                  SELECT 'crp_' || substr(s.id, 5), s.merchant_id, s.id, 'daily', 100, 'daily', 150, now()
                  FROM stores s WHERE s.merchant_id = :m RETURNING id, store_id
                )
                INSERT INTO credit_enrolments (programme_id, account_id, merchant_id, created_at)
                SELECT p.id, 'cra_' || substr(p.store_id, 5), :m, now() FROM p
                """
            ),
            {"m": merchant_id},
        )
    return merchant_id


async def ledgers_of(app: FastAPI, merchant_id: str) -> dict[str, list[tuple[str, int, int, str]]]:
    """Per store (by name): its programme account's entries (kind, amount, balance after, period)."""
    async with app.state.engine.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT a.customer_ref, e.kind, e.amount, e.balance_after, e.business_date FROM credit_entries e"
                " JOIN credit_accounts a ON a.id = e.account_id WHERE e.merchant_id = :m"
                " ORDER BY a.customer_ref, e.business_date, e.kind DESC"
            ),
            {"m": merchant_id},
        )
        out: dict[str, list[tuple[str, int, int, str]]] = defaultdict(list)
        for name, kind, amount, after, day in rows:
            out[name].append((kind, amount, after, day.isoformat()))
        return out


async def reports_of(app: FastAPI, merchant_id: str) -> dict[str, list[dict[str, Any]]]:
    async with app.state.engine.connect() as conn:
        rows = (
            await conn.execute(
                text(
                    "SELECT s.name, z.* FROM z_reports z JOIN stores s ON s.id = z.store_id"
                    " WHERE z.merchant_id = :m ORDER BY s.name, z.number"
                ),
                {"m": merchant_id},
            )
        ).mappings()
        out: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for row in rows:
            out[row["name"]].append(dict(row))
        return out


def figures(report: dict[str, Any]) -> dict[str, Any]:
    """What a report says, without what differs between two runs of the same data (ids, times, hashes)."""
    return {
        k: (instant(v) if isinstance(v, datetime) else v.isoformat() if isinstance(v, date) else v)
        for k, v in report.items()
        if k not in IGNORED | {"name"}
    }


async def expected_gross(app: FastAPI, merchant_id: str, last_day: date) -> dict[tuple[str, date], int]:
    async with app.state.engine.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT s.name, p.amount, p.succeeded_at FROM payments p JOIN stores s ON s.id = p.store_id"
                " WHERE p.merchant_id = :m AND p.status = 'succeeded'"
            ),
            {"m": merchant_id},
        )
        totals: dict[tuple[str, date], int] = defaultdict(int)
        for name, amount, at in rows:
            day = UTC_DAY.date_of(at)
            if day <= last_day:
                totals[(name, day)] += amount
        return totals


async def outbox_closeouts(app: FastAPI, merchant_id: str) -> list[str]:
    async with app.state.engine.connect() as conn:
        return list(
            (
                await conn.scalars(
                    text("SELECT subject FROM outbox WHERE merchant_id = :m AND type = 'closeout.created'"),
                    {"m": merchant_id},
                )
            ).all()
        )


def run_once(env: dict[str, str], merchant_id: str, *extra: str) -> str:
    proc = scheduler(env, "--once", "--merchant", merchant_id, *extra)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err[-3000:]
    return out


async def test_two_schedulers_at_once_seal_every_day_once(portal_app: FastAPI, scheduler_env: dict[str, str]) -> None:
    now = datetime.now(UTC)
    merchant_id = await seed(portal_app, stores=12, orders_per_store=40, base=now)
    first, second = (scheduler(scheduler_env, "--once", "--merchant", merchant_id) for _ in range(2))
    for proc in (first, second):
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err[-3000:]

    reports = await reports_of(portal_app, merchant_id)
    last_day = UTC_DAY.last_ended(now)
    assert len(reports) == 12
    expected = await expected_gross(portal_app, merchant_id, last_day)
    for name, chain in reports.items():
        assert [r["number"] for r in chain] == list(range(1, len(chain) + 1))
        assert chain[-1]["business_date"] == last_day
        assert chain[0]["previous_hash"] == "0" * 64
        for before, after in pairwise(chain):
            assert after["previous_hash"] == before["hash"] and after["window_start"] == before["window_end"]
        for report in chain:
            assert report["gross_sales"] == expected.get((name, report["business_date"]), 0)
    all_ids = [r["id"] for chain in reports.values() for r in chain]
    assert sorted(await outbox_closeouts(portal_app, merchant_id)) == sorted(all_ids)  # one event per report
    # One allocation per sealed day per store, never two: 100, 200, then 150 kept + 100 (50 expired) ...
    ledgers = await ledgers_of(portal_app, merchant_id)
    for name, chain in reports.items():
        allocations = [e for e in ledgers[name] if e[0] == "allocate"]
        assert len(allocations) == len(chain)
        assert len({e[3] for e in allocations}) == len(allocations)
        assert ledgers[name][-1][2] == min(100 * len(chain), 250)

    # Each sealed day was reconciled once with the gateway's settlement report, which (a gateway that settled
    # none of these seeded card payments) lists every card payment of the day as missing at the gateway.
    async with portal_app.state.engine.connect() as conn:
        reconciled = (
            await conn.execute(
                text("SELECT store_id, business_date, result FROM reconciliations WHERE merchant_id = :m"),
                {"m": merchant_id},
            )
        ).all()
        card_payments = await conn.scalar(
            text("SELECT count(*) FROM payments WHERE merchant_id = :m AND method = 'card' AND succeeded_at < :end"),
            {"m": merchant_id, "end": UTC_DAY.window(last_day)[1]},
        )
    assert len(reconciled) == len(all_ids)
    assert sum(len(r.result["missing_at_gateway"]) for r in reconciled) == card_payments
    # A day without card payments is balanced (the first, partial day can be: it depends on the hour the test runs).
    assert all((r.result["status"] == "differences") == bool(r.result["missing_at_gateway"]) for r in reconciled)
    assert "differences" in {r.result["status"] for r in reconciled}

    again = json.loads(run_once(scheduler_env, merchant_id))
    assert again["reports"] == 0 and again["reconciliations"] == 0  # nothing left: the run is idempotent
    assert sum(len(c) for c in (await reports_of(portal_app, merchant_id)).values()) == len(all_ids)


async def test_a_run_killed_half_way_then_rerun_ends_as_an_uninterrupted_run(
    portal_app: FastAPI, scheduler_env: dict[str, str]
) -> None:
    now = datetime.now(UTC)
    calm = await seed(portal_app, stores=10, orders_per_store=60, base=now)
    killed = await seed(portal_app, stores=10, orders_per_store=60, base=now)
    run_once(scheduler_env, calm)

    slow = {**scheduler_env, "SCHEDULER_CONCURRENCY": "1"}
    proc = scheduler(slow, "--once", "--merchant", killed)

    async def sealed() -> int:
        return sum(len(c) for c in (await reports_of(portal_app, killed)).values())

    deadline = time.monotonic() + 60
    while await sealed() < 5:
        assert proc.poll() is None, "the run finished before it could be killed"
        assert time.monotonic() < deadline
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    part_way = await sealed()
    assert 0 < part_way < 10 * DAYS
    run_once(scheduler_env, killed)

    calm_reports, killed_reports = await reports_of(portal_app, calm), await reports_of(portal_app, killed)
    assert calm_reports.keys() == killed_reports.keys()
    for name in calm_reports:
        assert [figures(r) for r in killed_reports[name]] == [figures(r) for r in calm_reports[name]]
    ids = [r["id"] for chain in killed_reports.values() for r in chain]
    assert sorted(await outbox_closeouts(portal_app, killed)) == sorted(ids)
    assert await ledgers_of(portal_app, killed) == await ledgers_of(portal_app, calm)  # and the same credit ledger


async def test_the_dry_run_shows_exactly_what_the_real_run_writes(
    portal_app: FastAPI, scheduler_env: dict[str, str]
) -> None:
    merchant_id = await seed(portal_app, stores=3, orders_per_store=30, base=datetime.now(UTC))
    planned = [json.loads(line) for line in run_once(scheduler_env, merchant_id, "--dry-run").splitlines()]
    dry = [r for r in planned if "credit_entry" not in r]
    assert len(dry) == 3 * DAYS or len(dry) == 3 * (DAYS + 1)
    assert len([r for r in planned if "credit_entry" in r]) >= len(dry)  # one allocation a day (and expiries)
    assert await reports_of(portal_app, merchant_id) == {}  # nothing written
    run_once(scheduler_env, merchant_id)
    written = [r for chain in (await reports_of(portal_app, merchant_id)).values() for r in chain]

    def key(report: dict[str, Any]) -> tuple[str, str]:
        return (report["store_id"], str(report["business_date"]))

    by_key = {key(r): r for r in written}
    assert len(by_key) == len(dry)
    for report in dry:
        stored = by_key[key(report)]
        assert {k: v for k, v in report.items() if k not in IGNORED} == {
            k: v for k, v in figures(stored).items() if k not in IGNORED
        }


async def test_payments_pending_too_long_are_expired_by_the_run(
    portal_app: FastAPI, scheduler_env: dict[str, str]
) -> None:
    now = datetime.now(UTC)
    merchant_id = await seed(portal_app, stores=1, orders_per_store=3, base=now)
    async with portal_app.state.engine.begin() as conn:
        store_id = await conn.scalar(text("SELECT id FROM stores WHERE merchant_id = :m"), {"m": merchant_id})
        for label, age in (("stale", timedelta(hours=30)), ("fresh", timedelta(hours=1))):
            at = now - age
            order_id = f"{store_id}_{label}"
            await conn.execute(
                text(
                    "INSERT INTO orders (id, merchant_id, store_id, status, total_amount, currency, version,"
                    " created_at, updated_at, item_count) VALUES (:o, :m, :s, 'open', 500, 'JPY', 1, :at, :at, 1);"
                ),
                {"o": order_id, "m": merchant_id, "s": store_id, "at": at},
            )
            await conn.execute(
                text(
                    "INSERT INTO bills (id, merchant_id, store_id, order_id, status, total_amount, paid_amount,"
                    " currency, version, created_at, updated_at)"
                    " VALUES (:b, :m, :s, :o, 'unpaid', 500, 0, 'JPY', 1, :at, :at)"
                ),
                {"b": f"{order_id}_b", "o": order_id, "m": merchant_id, "s": store_id, "at": at},
            )
            await conn.execute(
                text(
                    "INSERT INTO payments (id, merchant_id, store_id, bill_id, order_id, amount, currency, method,"
                    " status, pgw_reference, version, created_at, updated_at)"
                    " VALUES (:p, :m, :s, :b, :o, 500, 'JPY', 'card', 'pending', :ref, 1, :at, :at)"
                ),
                {
                    "p": f"{order_id}_p",
                    "b": f"{order_id}_b",
                    "o": order_id,
                    "m": merchant_id,
                    "s": store_id,
                    "ref": f"pgwref_{order_id}",
                    "at": at,
                },
            )
    summary = json.loads(run_once(scheduler_env, merchant_id))
    assert summary["expired_payments"] == 1
    async with portal_app.state.engine.connect() as conn:
        rows = dict(
            (
                await conn.execute(
                    text(
                        "SELECT id, status || ':' || coalesce(failure_reason, '') FROM payments WHERE store_id = :s"
                        " AND status <> 'succeeded'"
                    ),
                    {"s": store_id},
                )
            ).all()
        )
        events = await conn.scalar(
            text("SELECT count(*) FROM outbox WHERE merchant_id = :m AND type = 'payment.failed'"), {"m": merchant_id}
        )
    assert rows == {f"{store_id}_stale_p": "failed:expired", f"{store_id}_fresh_p": "pending:"}
    assert events == 1
    # The last sealed day carried the fresh one over (it was still pending), never the expired one.
    reports = await reports_of(portal_app, merchant_id)
    [chain] = reports.values()
    assert chain[-1]["carried_over"]["pending_payments"]["count"] == (
        1 if now - timedelta(hours=1) < chain[-1]["window_end"] else 0
    )
