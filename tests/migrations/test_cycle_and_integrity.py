"""Operators run migrations forward and back on live data: the seed's cycle (base → head → -1 → head with
`verify` between) with rows present, data identical (row counts and checksums) after every step, downgrades
that would destroy data refusing instead, squawk over every revision, and the `smartpos migrate` CLI."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import Connection, text

from smartpos_cli import migrate
from tests.migrations.conftest import scratch, sync_engine
from tests.support.databases import TestDatabase

ROOT = Path(__file__).resolve().parents[2]
BEFORE_ITEM_COUNT = "1b054a72d710"  # commerce core, the revision before the item_count expand
BEFORE_CONTRACT = "cdbe87debfaa"  # the item_count backfill, the revision before its contract

# The columns every revision in this test keeps, per table, in a stable order.
CHECKED = {
    "merchants": "id, name, currency, created_at",
    "stores": "id, merchant_id, name, created_at",
    "products": "id, merchant_id, name, sku, unit_price, currency, created_at",
    "orders": "id, merchant_id, store_id, status, total_amount, currency, version, created_at, updated_at,"
    " completed_at, canceled_at",
    "order_lines": "order_id, line_no, merchant_id, product_id, name, quantity, unit_price, line_total",
    "bills": "id, merchant_id, store_id, order_id, status, total_amount, paid_amount, currency, paid_at, version",
    "payments": "id, merchant_id, store_id, bill_id, order_id, amount, currency, method, status, pgw_reference, version",
}
ORDER_BY = {"order_lines": "order_id, line_no"}


def run(db: TestDatabase, action: str, revision: str | None = None) -> int:
    return migrate.run(migrate.SERVICES["portal"], action, revision, database_url=db.url)


def drift(db: TestDatabase) -> list[object]:
    return asyncio.run(migrate.schema_drift(migrate.SERVICES["portal"], db.url))


def seed(conn: Connection, orders: int = 2000) -> None:
    """Realistic rows through every table, written as the application of that revision would."""
    has_item_count = conn.execute(
        text(
            "SELECT EXISTS (SELECT 1 FROM information_schema.columns WHERE table_name = 'orders' AND column_name = 'item_count')"
        )
    ).scalar()
    extra_column, extra_value = (", item_count", ", 0") if has_item_count else ("", "")
    conn.execute(
        text("INSERT INTO merchants (id, name, currency) VALUES ('mer_01SEED000000000000000000MM', 'Kissa', 'JPY')")
    )
    conn.execute(
        text(
            "INSERT INTO stores (id, merchant_id, name) VALUES ('sto_01SEED000000000000000000SS', 'mer_01SEED000000000000000000MM', 'Ueno')"
        )
    )
    for p, price in enumerate((450, 700, 1200)):
        conn.execute(
            text(
                "INSERT INTO products (id, merchant_id, name, sku, unit_price, currency) VALUES (:id, 'mer_01SEED000000000000000000MM', :n, :sku, :price, 'JPY')"
            ),
            {"id": f"prd_01SEED00000000000000000P{p}0", "n": f"item {p}", "sku": f"S{p}", "price": price},
        )
    conn.execute(
        text(
            f"""
            INSERT INTO orders (id, merchant_id, store_id, status, total_amount, currency, version, created_at, updated_at{extra_column})
            SELECT 'ord_01SEED' || lpad(g::text, 20, '0'), 'mer_01SEED000000000000000000MM', 'sto_01SEED000000000000000000SS',
                   CASE WHEN g % 3 = 0 THEN 'completed' ELSE 'open' END, 0, 'JPY', 1,
                   now() - g * interval '1 minute', now(){extra_value}
            FROM generate_series(1, :n) g
            """
        ),
        {"n": orders},
    )
    conn.execute(
        text(
            """
            INSERT INTO order_lines (order_id, line_no, merchant_id, product_id, name, quantity, unit_price, line_total)
            SELECT o.id, l, o.merchant_id, 'prd_01SEED00000000000000000P' || (l % 3) || '0', 'item', l + 1,
                   450, 450 * (l + 1)
            FROM orders o, generate_series(1, 1 + (substr(o.id, 20)::int % 3)) l
            """
        )
    )
    conn.execute(
        text(
            "UPDATE orders o SET total_amount = s.t FROM (SELECT order_id, sum(line_total) t FROM order_lines GROUP BY order_id) s WHERE s.order_id = o.id"
        )
    )
    if has_item_count:
        conn.execute(
            text("UPDATE orders o SET item_count = (SELECT sum(quantity) FROM order_lines l WHERE l.order_id = o.id)")
        )
    conn.execute(
        text(
            """
            INSERT INTO bills (id, merchant_id, store_id, order_id, status, total_amount, paid_amount, currency, paid_at, version,
                               created_at, updated_at)
            SELECT 'bil' || substr(id, 4), merchant_id, store_id, id, 'paid', total_amount, total_amount, 'JPY', now(), 2,
                   now(), now()
            FROM orders WHERE status = 'completed'
            """
        )
    )
    conn.execute(
        text(
            """
            INSERT INTO payments (id, merchant_id, store_id, bill_id, order_id, amount, currency, method, status, pgw_reference,
                                  version, created_at, updated_at)
            SELECT 'pay' || substr(id, 4), merchant_id, store_id, id, order_id, total_amount, 'JPY', 'card', 'succeeded',
                   'pgwref_' || substr(id, 5), 2, now(), now()
            FROM bills
            """
        )
    )


def fingerprint(conn: Connection) -> dict[str, tuple[int, str]]:
    result = {}
    for table, columns in CHECKED.items():
        order = ORDER_BY.get(table, "id")
        row = conn.execute(
            text(
                f"SELECT count(*), md5(coalesce(string_agg(t::text, '|' ORDER BY {order}), '')) FROM (SELECT {columns} FROM {table}) t"
            )
        ).one()
        result[table] = (row[0], row[1])
    return result


def item_counts_are_right(conn: Connection) -> bool:
    wrong = conn.execute(
        text(
            "SELECT count(*) FROM orders o WHERE item_count IS DISTINCT FROM (SELECT sum(quantity) FROM order_lines l WHERE l.order_id = o.id)"
        )
    ).scalar()
    return wrong == 0


def drift_kinds(db: TestDatabase) -> list[str]:
    """What the models have that the database lacks, by kind (add_column, add_index, ...), sorted."""
    return sorted(d[0][0] if isinstance(d, list) else d[0] for d in drift(db))  # type: ignore[index]


def test_seed_cycle_base_head_minus_one_head_with_verify_and_rows() -> None:
    db = scratch("portal", "cycle")
    engine = sync_engine(db)
    try:
        assert run(db, "upgrade", "head") == 0
        assert drift(db) == []
        with engine.begin() as conn:
            seed(conn, 300)
            conn.execute(
                text(
                    "UPDATE orders o SET item_count = (SELECT sum(quantity) FROM order_lines l WHERE l.order_id = o.id)"
                )
            )
            before = fingerprint(conn)
        # store business days, payments.succeeded_at; 4 indexes on busy tables; shifts (3 indexes), cash
        # movements (1), z_reports (1)
        # products.active; merchant_configs, change_requests (2 indexes), change_request_approvals
        config = ["add_column", "add_table", "add_table", "add_index", "add_index", "add_table"]
        clocks = [*config, "add_table"]  # test clocks (and what came after them)
        programmes = [*clocks, "add_table", "add_table"] + ["add_index"] * 2 + ["add_column"] * 3  # + enrolments, keys
        # accounts, the ledger, programmes, enrolments (whole tables missing: their indexes, not their columns)
        credit = [*clocks] + ["add_table"] * 4 + ["add_index"] * 6
        reconciliations = ["add_table", "add_index", *credit]
        close = ["add_column"] * 3 + ["add_index"] * 9 + ["add_table"] * 3 + reconciliations
        offline = ["add_column"] * 10 + ["add_index"] * 3  # client ids, offline facts, merchant limits
        refunds = ["add_column"] * 5 + ["add_index"] * 3 + ["add_table"]
        assert run(db, "downgrade", "-1") == 0  # configuration promotion
        assert drift_kinds(db) == sorted(config)
        assert run(db, "upgrade", "head") == 0
        assert drift(db) == []
        assert run(db, "downgrade", "-2") == 0  # the clocks' certification run (and configuration promotion)
        assert drift_kinds(db) == sorted([*config, "add_column"])
        assert run(db, "upgrade", "head") == 0
        assert drift(db) == []
        assert run(db, "downgrade", "-3") == 0  # test clocks
        assert drift_kinds(db) == sorted(clocks)
        assert run(db, "upgrade", "head") == 0
        assert drift(db) == []
        assert run(db, "downgrade", "-4") == 0  # credit programmes
        assert drift_kinds(db) == sorted(programmes)
        assert run(db, "upgrade", "head") == 0  # and forward again on the same rows
        assert drift(db) == []
        assert run(db, "downgrade", "-5") == 0  # store credit
        assert drift_kinds(db) == sorted(credit)
        assert run(db, "upgrade", "head") == 0
        assert drift(db) == []
        assert run(db, "downgrade", "-6") == 0  # settlement reconciliations
        assert drift_kinds(db) == sorted(reconciliations)
        assert run(db, "upgrade", "head") == 0
        assert drift(db) == []
        # close of business: store business days, payments.succeeded_at; 4 indexes on busy tables; shifts
        # (3 indexes), cash movements (1), z_reports (1)
        assert run(db, "downgrade", "-7") == 0
        assert drift_kinds(db) == sorted(close)
        assert run(db, "upgrade", "head") == 0
        assert drift(db) == []
        assert run(db, "downgrade", "-8") == 0  # offline store-and-forward
        assert drift_kinds(db) == sorted(close + offline)
        assert run(db, "upgrade", "head") == 0
        assert drift(db) == []
        assert run(db, "downgrade", "-9") == 0  # then also the refund CHECKs' validation (nothing for models)
        assert drift_kinds(db) == sorted(close + offline)
        assert run(db, "downgrade", "-1") == 0  # refunds and voids
        assert drift_kinds(db) == sorted(close + offline + refunds)
        assert run(db, "downgrade", "-1") == 0  # the checkout's lock_version and save assertion
        assert drift_kinds(db) == sorted([*close, *offline, *refunds, "add_column"])
        assert run(db, "downgrade", BEFORE_CONTRACT) == 0
        # verify names each: close, offline, refunds, lock_version, item_count (nullable again)
        assert drift_kinds(db) == sorted([*close, *offline, *refunds, "add_column", "modify_nullable"])
        assert run(db, "verify") == 1
        assert run(db, "upgrade", "head") == 0
        assert run(db, "verify") == 0
        with engine.connect() as conn:
            assert fingerprint(conn) == before
            assert item_counts_are_right(conn)
    finally:
        engine.dispose()


def test_data_is_identical_after_upgrade_downgrade_and_upgrade_again(monkeypatch: pytest.MonkeyPatch) -> None:
    # Small batches over three parallel key ranges, so batch and range boundaries are really crossed.
    monkeypatch.setenv("SMARTPOS_BACKFILL_BATCH", "97")
    monkeypatch.setenv("SMARTPOS_BACKFILL_WORKERS", "3")
    db = scratch("portal", "integrity")
    engine = sync_engine(db)
    try:
        assert run(db, "upgrade", BEFORE_ITEM_COUNT) == 0
        with engine.begin() as conn:
            seed(conn, 2000)
            original = fingerprint(conn)
        assert original["orders"][0] == 2000 and original["order_lines"][0] > 2000 and original["payments"][0] > 600

        assert run(db, "upgrade", "head") == 0
        with engine.connect() as conn:
            assert fingerprint(conn) == original
            assert item_counts_are_right(conn)
        assert drift(db) == []

        assert run(db, "downgrade", BEFORE_ITEM_COUNT) == 0
        with engine.connect() as conn:
            assert fingerprint(conn) == original

        assert run(db, "upgrade", "head") == 0
        with engine.connect() as conn:
            assert fingerprint(conn) == original
            assert item_counts_are_right(conn)
    finally:
        engine.dispose()


def test_the_backfill_is_rerunnable_and_skips_rows_the_application_already_wrote() -> None:
    db = scratch("portal", "rerun")
    engine = sync_engine(db)
    try:
        assert run(db, "upgrade", "ad0c21390a13") == 0  # expand only
        with engine.begin() as conn:
            seed(conn, 500)
            conn.execute(text("UPDATE orders SET item_count = 999 WHERE id = 'ord_01SEED00000000000000000007'"))
        assert run(db, "upgrade", "head") == 0
        with engine.connect() as conn:
            assert (
                conn.execute(text("SELECT item_count FROM orders WHERE id = 'ord_01SEED00000000000000000007'")).scalar()
                == 999
            )
            assert conn.execute(text("SELECT count(*) FROM orders WHERE item_count IS NULL")).scalar() == 0
    finally:
        engine.dispose()


def test_a_downgrade_that_would_drop_tables_with_rows_refuses() -> None:
    db = scratch("portal", "refuse")
    engine = sync_engine(db)
    try:
        assert run(db, "upgrade", BEFORE_ITEM_COUNT) == 0
        with engine.begin() as conn:
            seed(conn, 10)
        with pytest.raises(RuntimeError, match="holds rows"):
            run(db, "downgrade", "base")
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM orders")).scalar() == 10
    finally:
        engine.dispose()


def test_downgrades_refuse_to_drop_refunds_or_terminal_ids() -> None:
    """Shifts and Z reports are a store's records, refunds are money history and client ids are what stop a retried offline sale from being created twice:
    a downgrade that would drop them refuses, and leaves everything as it was."""
    db = scratch("portal", "refuse_money")
    engine = sync_engine(db)
    try:
        assert run(db, "upgrade", "head") == 0
        with engine.begin() as conn:
            seed(conn, 3)
            conn.execute(text("UPDATE orders SET client_order_id = 'till-' || id"))
            conn.execute(
                text(
                    "INSERT INTO shifts (id, merchant_id, store_id, status, currency, opening_float, opened_by,"
                    " opened_at, version) SELECT 'shf_1', merchant_id, id, 'open', 'JPY', 0, 'dev', now(), 1"
                    " FROM stores LIMIT 1"
                )
            )
            conn.execute(
                text(
                    "INSERT INTO test_clocks (id, merchant_id, frozen_time, status, version, created_at, updated_at)"
                    " SELECT 'clk_1', id, now(), 'ready', 1, now(), now() FROM merchants LIMIT 1"
                )
            )
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO change_requests (id, merchant_id, author_id, status, bundle, checksum, base,"
                    " base_checksum, diff, approvals_required, created_at, version)"
                    " SELECT 'chg_1', id, 'cli_a', 'pending_approval', '{}', 'x', '{}', 'x', '[]', 2, now(), 1"
                    " FROM merchants LIMIT 1"
                )
            )
        with pytest.raises(RuntimeError, match="holds rows"):
            run(db, "downgrade", "-1")  # change requests: the record of what changed production
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM change_requests"))
            conn.execute(text("UPDATE products SET active = false WHERE id = (SELECT min(id) FROM products)"))
        with pytest.raises(RuntimeError, match="sold again"):
            run(db, "downgrade", "-1")  # a product the configuration dropped would be sold again
        with engine.begin() as conn:
            conn.execute(text("UPDATE products SET active = true"))
        assert run(db, "downgrade", "-2") == 0  # configuration promotion; the clocks' certification run
        with pytest.raises(RuntimeError, match="holds rows"):
            run(db, "downgrade", "-1")  # test clocks: sandbox merchants would jump back to real time
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM test_clocks"))
        assert run(db, "downgrade", "-4") == 0  # clocks, programmes, store credit, reconciliations (none yet)
        with pytest.raises(RuntimeError, match="holds rows"):
            run(db, "downgrade", "-1")  # close of business: a store's shifts are its records
        with engine.begin() as conn:
            assert conn.execute(text("SELECT count(*) FROM shifts")).scalar() == 1
            conn.execute(text("DELETE FROM shifts"))
        assert run(db, "downgrade", "-1") == 0  # close of business
        with pytest.raises(RuntimeError, match="terminal-generated ids"):
            run(db, "downgrade", "-1")
        with engine.begin() as conn:
            assert conn.execute(text("SELECT count(client_order_id) FROM orders")).scalar() == 3
            conn.execute(text("UPDATE orders SET client_order_id = NULL"))
            payment = conn.execute(text("SELECT * FROM payments LIMIT 1")).mappings().one()
            conn.execute(
                text(
                    "INSERT INTO refunds (id, merchant_id, store_id, order_id, bill_id, payment_id, amount, currency,"
                    " method, status, version, created_at, updated_at) VALUES ('ref_1', :m, :s, :o, :b, :p, 1, :c,"
                    " :method, 'succeeded', 1, now(), now())"
                ),
                {
                    "m": payment["merchant_id"],
                    "s": payment["store_id"],
                    "o": payment["order_id"],
                    "b": payment["bill_id"],
                    "p": payment["id"],
                    "c": payment["currency"],
                    "method": payment["method"],
                },
            )
        assert run(db, "downgrade", "-2") == 0  # no client ids left: offline's downgrade goes through
        with pytest.raises(RuntimeError, match="holds rows"):
            run(db, "downgrade", "-1")  # refunds and voids
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM refunds")).scalar() == 1
    finally:
        engine.dispose()


def test_squawk_finds_nothing_in_any_revision(tmp_path: Path) -> None:
    subprocess.run([sys.executable, str(ROOT / "scripts" / "revision_sql.py"), str(tmp_path)], check=True, cwd=ROOT)
    files = sorted(tmp_path.glob("*.sql"))
    assert len(files) >= 9
    squawk = Path(sys.executable).parent / "squawk"
    result = subprocess.run([str(squawk), "--reporter=gcc", *map(str, files)], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_cli_runs_every_action_against_every_service(databases: dict[str, TestDatabase]) -> None:
    env = {**os.environ, **{db.env_var: db.url for db in databases.values()}}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "smartpos_cli", *args], capture_output=True, text=True, env=env, cwd=ROOT
        )

    assert cli("migrate", "all", "verify").returncode == 0
    assert "schema matches" in cli("migrate", "all", "verify").stdout
    current = cli("migrate", "all", "current")
    assert current.returncode == 0 and "(head)" in current.stdout
    assert "item_count" in cli("migrate", "portal", "history").stdout
    assert cli("migrate", "device-auth", "upgrade", "head").returncode == 0
    assert cli("migrate", "nowhere", "current").returncode == 2
    assert cli("migrate", "portal", "sideways").returncode == 2
    assert cli("migrate", "portal", "downgrade").returncode == 2


def test_device_auth_downgrade_refuses_while_partner_clients_exist() -> None:
    auth = migrate.SERVICES["device-auth"]
    db = scratch("device-auth", "partners")
    engine = sync_engine(db)
    try:
        assert migrate.run(auth, "upgrade", "head", database_url=db.url) == 0
        assert migrate.run(auth, "downgrade", "d41f7a2c9e10", database_url=db.url) == 0  # (integration rollouts)
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO oauth_clients (id, merchant_id, role, name, secret_hash, status, created_at)"
                    " VALUES ('cli_p', NULL, 'partner', 'Acme', 'x', 'active', now())"
                )
            )
        with pytest.raises(RuntimeError, match="partner clients exist"):
            migrate.run(auth, "downgrade", "-1", database_url=db.url)
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM oauth_clients WHERE role = 'partner'"))
        assert migrate.run(auth, "downgrade", "-1", database_url=db.url) == 0
        assert migrate.run(auth, "upgrade", "head", database_url=db.url) == 0
        assert asyncio.run(migrate.schema_drift(auth, db.url)) == []
    finally:
        engine.dispose()


def test_console_downgrade_refuses_to_drop_the_audit_log() -> None:
    console = migrate.SERVICES["console"]
    db = scratch("console", "audit")
    engine = sync_engine(db)
    try:
        assert migrate.run(console, "upgrade", "head", database_url=db.url) == 0
        assert asyncio.run(migrate.schema_drift(console, db.url)) == []
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO audit_log (seq, at, actor_role, actor_id, action, subject, detail, previous_hash, hash)"
                    " VALUES (1, now(), 'admin', 'cli_a', 'x', 'y', '{}', '0', '1')"
                )
            )
        with pytest.raises(RuntimeError, match="holds rows"):
            migrate.run(console, "downgrade", "base", database_url=db.url)
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM audit_log")).scalar() == 1
    finally:
        engine.dispose()


def test_device_auth_downgrade_refuses_while_devices_name_their_integration() -> None:
    auth = migrate.SERVICES["device-auth"]
    db = scratch("device-auth", "integrations")
    engine = sync_engine(db)
    try:
        assert migrate.run(auth, "upgrade", "head", database_url=db.url) == 0
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO users (id, email, password_hash, role, merchant_id, status, failed_logins,"
                    " created_at) VALUES ('usr_1', 'a@b.example', 'x', 'admin', NULL, 'active', 0, now())"
                )
            )
            conn.execute(
                text(
                    "INSERT INTO users (id, email, password_hash, role, partner_id, status, failed_logins, created_at)"
                    " VALUES ('usr_2', 'p@b.example', 'x', 'partner', 'cli_p', 'active', 0, now())"
                )
            )
        with pytest.raises(RuntimeError, match="partner users exist"):
            migrate.run(auth, "downgrade", "-1", database_url=db.url)
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM users WHERE role = 'partner'"))
        assert migrate.run(auth, "downgrade", "-1", database_url=db.url) == 0  # partner users
        with pytest.raises(RuntimeError, match="holds rows"):
            migrate.run(auth, "downgrade", "-1", database_url=db.url)  # people would lose their sign-in
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM users"))
        assert migrate.run(auth, "downgrade", "e52b8c1f7a43", database_url=db.url) == 0  # (users)
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO devices (id, merchant_id, store_id, name, status, jwks, version, integration_id)"
                    " VALUES ('dev_1', 'mer_1', 'sto_1', 't', 'active', '{}', 1, 'int_1')"
                )
            )
        with pytest.raises(RuntimeError, match="integration"):
            migrate.run(auth, "downgrade", "-1", database_url=db.url)
        with engine.begin() as conn:
            conn.execute(text("UPDATE devices SET integration_id = NULL"))
        assert migrate.run(auth, "downgrade", "-1", database_url=db.url) == 0
        assert migrate.run(auth, "upgrade", "head", database_url=db.url) == 0
        assert asyncio.run(migrate.schema_drift(auth, db.url)) == []
    finally:
        engine.dispose()
