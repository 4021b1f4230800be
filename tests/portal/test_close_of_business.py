"""Close of business at the HTTP boundary (API.md v1.1), against the real PostgreSQL: business days across DST
and time zones, cash drawer shifts with a blind close, and sealed, numbered, hash-chained Z reports that the
database itself refuses to change and that verification checks."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from datetime import UTC, date, datetime, time, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
import yaml
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from portal.closeout.business_day import BusinessDay
from portal.closeout.zreport import GENESIS_HASH, canonical, seal
from portal.pgw.settlement import SettlementEntry, SettlementLedger
from smartpos_shared.ids import new_id
from tests.portal.helpers import bill, pay, ring_up, webhook
from tests.support.databases import TestDatabase
from tests.support.portal_fixtures import MakeTenant, Tenant
from tests.support.processes import ROOT

ASYNCAPI = Path(__file__).resolve().parents[2] / "docs" / "asyncapi.yaml"
NEW_YORK, TOKYO = "America/New_York", "Asia/Tokyo"


def code(response: httpx.Response) -> str:
    return str(response.json()["type"]).rsplit("/", 1)[-1]


# ---------------------------------------------------------------- business days (the one rule, unit-tested)


def test_a_day_runs_from_closing_time_to_closing_time_in_local_time() -> None:
    day = BusinessDay(NEW_YORK, time(4, 0))
    zone = ZoneInfo(NEW_YORK)
    before = datetime(2026, 11, 24, 3, 59, tzinfo=zone)
    after = datetime(2026, 11, 24, 4, 1, tzinfo=zone)
    assert day.date_of(before) == date(2026, 11, 23)
    assert day.date_of(after) == date(2026, 11, 24)
    start, end = day.window(date(2026, 11, 23))
    assert start == datetime(2026, 11, 23, 9, 0, tzinfo=UTC) and end == datetime(2026, 11, 24, 9, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("day", "hours"),
    [
        (date(2027, 3, 13), 23),  # the night clocks go forward (2027-03-14 02:00 EST -> 03:00 EDT)
        (date(2026, 10, 31), 25),  # the night clocks go back (2026-11-01 02:00 EDT -> 01:00 EST)
        (date(2027, 3, 14), 24),
        (date(2026, 11, 1), 24),
    ],
)
def test_dst_changes_make_days_of_23_and_25_hours_that_still_join(day: date, hours: int) -> None:
    business = BusinessDay(NEW_YORK, time(4, 0))
    start, end = business.window(day)
    assert end - start == timedelta(hours=hours)
    assert business.window(day + timedelta(days=1))[0] == end  # no instant in two days, none in none
    assert business.date_of(start) == day and business.date_of(end - timedelta(microseconds=1)) == day
    assert business.date_of(end) == day + timedelta(days=1)


def test_a_closing_time_inside_the_dst_gap_still_gives_joined_days() -> None:
    business = BusinessDay(NEW_YORK, time(2, 30))  # 02:30 does not exist on 2027-03-14
    days = [date(2027, 3, 12) + timedelta(days=n) for n in range(4)]
    windows = [business.window(d) for d in days]
    for (_, end), (start, _) in pairwise(windows):
        assert end == start
    for d, (start, end) in zip(days, windows, strict=True):
        assert business.date_of(start) == d and business.date_of(end - timedelta(microseconds=1)) == d


def test_tokyo_has_no_dst_and_its_day_turns_at_19_00_utc() -> None:
    business = BusinessDay(TOKYO, time(4, 0))
    start, end = business.window(date(2026, 11, 23))
    assert start == datetime(2026, 11, 22, 19, 0, tzinfo=UTC) and end - start == timedelta(hours=24)
    # 18:59 UTC is 03:59 the next morning in Tokyo: still the day before.
    assert business.date_of(datetime(2026, 11, 23, 18, 59, tzinfo=UTC)) == date(2026, 11, 23)
    assert business.date_of(datetime(2026, 11, 23, 19, 1, tzinfo=UTC)) == date(2026, 11, 24)


def test_the_canonical_json_is_sorted_compact_and_utf8() -> None:
    assert canonical({"b": 1, "a": {"d": "é", "c": [1, 2]}}) == '{"a":{"c":[1,2],"d":"é"},"b":1}'.encode()
    document = {"number": 1, "previous_hash": GENESIS_HASH, "gross_sales": 100}
    assert seal(document) == seal({**document, "hash": "anything"})  # the hash is over everything but itself
    assert seal(document) != seal({**document, "gross_sales": 101})


# ---------------------------------------------------------------- helpers at the HTTP boundary


def at(app: FastAPI, moment: datetime) -> None:
    """Move the portal's business time to `moment` (access tokens keep real time)."""
    app.state.business_clock.offset = moment.timestamp() - app.state.clock()


async def set_store(portal: httpx.AsyncClient, tenant: Tenant, **fields: Any) -> dict[str, Any]:
    response = await portal.patch(f"/stores/{tenant.store_id}", json=fields, headers=tenant.as_merchant)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


async def cash_sale(portal: httpx.AsyncClient, tenant: Tenant) -> dict[str, Any]:
    order = await ring_up(portal, tenant)
    b = await bill(portal, tenant, order["id"])
    response = await pay(portal, tenant, b["id"], b["total_amount"], "cash")
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


async def close(portal: httpx.AsyncClient, tenant: Tenant, day: date | None = None) -> httpx.Response:
    body = {"business_date": day.isoformat()} if day else {}
    return await portal.post(f"/stores/{tenant.store_id}/closeouts", json=body, headers=tenant.as_merchant)


async def chain(portal: httpx.AsyncClient, tenant: Tenant) -> dict[str, Any]:
    response = await portal.get(f"/stores/{tenant.store_id}/closeouts?verify=true", headers=tenant.as_merchant)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def first_day(tenant_store: dict[str, Any]) -> date:
    business = BusinessDay(tenant_store["timezone"], time.fromisoformat(tenant_store["day_closes_at"]))
    return business.date_of(datetime.fromisoformat(tenant_store["created_at"]))


# ---------------------------------------------------------------- stores


async def test_stores_take_a_timezone_and_closing_time_and_refuse_bad_ones(
    portal: httpx.AsyncClient, tenant: Tenant
) -> None:
    store = await set_store(portal, tenant, timezone=TOKYO, day_closes_at="05:30")
    assert (store["timezone"], store["day_closes_at"]) == (TOKYO, "05:30")
    created = await portal.post("/stores", json={"name": "Default"}, headers=tenant.as_merchant)
    assert (created.json()["timezone"], created.json()["day_closes_at"]) == ("UTC", "04:00")
    for bad in ({"timezone": "Mars/Olympus"}, {"day_closes_at": "24:00"}, {"day_closes_at": "4am"}):
        response = await portal.patch(f"/stores/{tenant.store_id}", json=bad, headers=tenant.as_merchant)
        assert response.status_code == 422, response.text
    device = await portal.patch(f"/stores/{tenant.store_id}", json={"name": "x"}, headers=tenant.as_device)
    assert device.status_code == 404  # a device never changes its store


# ---------------------------------------------------------------- business days through the API


async def test_payments_at_03_59_and_04_01_land_on_different_business_days(
    portal: httpx.AsyncClient, portal_app: FastAPI, tenant: Tenant
) -> None:
    store = await set_store(portal, tenant, timezone=NEW_YORK)
    day0 = first_day(store)
    zone = ZoneInfo(NEW_YORK)
    next_morning = day0 + timedelta(days=1)
    at(portal_app, datetime.combine(next_morning, time(3, 59), tzinfo=zone))
    late = await cash_sale(portal, tenant)
    at(portal_app, datetime.combine(next_morning, time(4, 1), tzinfo=zone))
    early = await cash_sale(portal, tenant)

    not_over = await close(portal, tenant, next_morning)
    assert not_over.status_code == 409 and code(not_over) == "closeout_out_of_order"
    at(portal_app, datetime.combine(next_morning, time(4, 30), tzinfo=zone))
    first = await close(portal, tenant)
    assert first.status_code == 201, first.text
    report = first.json()
    assert (report["business_date"], report["number"]) == (day0.isoformat(), 1)
    assert report["gross_sales"] == late["amount"] and report["by_method"]["cash"]["payments"] == 1
    assert report["orders"] == 1 and report["previous_hash"] == GENESIS_HASH

    day_not_over = await close(portal, tenant)
    assert day_not_over.status_code == 409 and code(day_not_over) == "business_day_not_over"
    at(portal_app, datetime.combine(next_morning + timedelta(days=1), time(4, 5), tzinfo=zone))
    second = (await close(portal, tenant, next_morning)).json()
    assert (second["business_date"], second["number"]) == (next_morning.isoformat(), 2)
    assert second["gross_sales"] == early["amount"] and second["previous_hash"] == report["hash"]
    assert second["window_start"] == report["window_end"]

    again = await close(portal, tenant, day0)
    assert again.status_code == 409 and code(again) == "day_already_closed"
    verified = await chain(portal, tenant)
    assert verified["verification"] == {"intact": True, "reports": 2, "broken_at": None, "problem": None}
    assert [r["number"] for r in verified["items"]] == [2, 1]


async def test_a_dst_day_in_new_york_is_23_hours_and_a_tokyo_day_is_24(
    portal: httpx.AsyncClient, portal_app: FastAPI, make_tenant: MakeTenant
) -> None:
    ny, tokyo = await make_tenant(), await make_tenant()
    await set_store(portal, ny, timezone=NEW_YORK)
    await set_store(portal, tokyo, timezone=TOKYO)
    # Run the New York store up to the spring-forward night: its first day, then straight to 2027-03-13.
    ny_zone = ZoneInfo(NEW_YORK)
    at(portal_app, datetime(2027, 3, 13, 12, 0, tzinfo=ny_zone))
    sale_on_dst_day = await cash_sale(portal, ny)
    at(portal_app, datetime(2027, 3, 14, 3, 30, tzinfo=ny_zone))  # EDT already: 23 hours after 04:00 EST
    after_the_change = await cash_sale(portal, ny)  # still business date 2027-03-13
    at(portal_app, datetime(2027, 3, 14, 4, 10, tzinfo=ny_zone))
    reports = []
    while True:
        response = await close(portal, ny)
        if response.status_code != 201:
            assert code(response) == "business_day_not_over", response.text
            break
        reports.append(response.json())
    dst = reports[-1]
    assert dst["business_date"] == "2027-03-13"
    start, end = (datetime.fromisoformat(dst[k]) for k in ("window_start", "window_end"))
    assert end - start == timedelta(hours=23)
    assert dst["gross_sales"] == sale_on_dst_day["amount"] + after_the_change["amount"]
    assert sum(r["gross_sales"] for r in reports) == dst["gross_sales"]  # nothing counted twice

    tokyo_zone = ZoneInfo(TOKYO)
    at(portal_app, datetime(2027, 3, 14, 3, 59, tzinfo=tokyo_zone))
    tokyo_sale = await cash_sale(portal, tokyo)
    at(portal_app, datetime(2027, 3, 14, 4, 5, tzinfo=tokyo_zone))
    last = None
    while (response := await close(portal, tokyo)).status_code == 201:
        last = response.json()
    assert last is not None and last["business_date"] == "2027-03-13" and last["gross_sales"] == tokyo_sale["amount"]
    assert last["window_end"] == "2027-03-13T19:00:00.000000Z"
    assert (await chain(portal, ny))["verification"]["intact"]


# ---------------------------------------------------------------- shifts


async def test_a_shift_counts_its_cash_and_a_device_closes_blind(
    portal: httpx.AsyncClient, portal_app: FastAPI, tenant: Tenant
) -> None:
    opened = await portal.post("/shifts", json={"opening_float": 10_000}, headers=tenant.as_device)
    assert opened.status_code == 201, opened.text
    shift = opened.json()
    assert shift["store_id"] == tenant.store_id and shift["expected_cash"] is None  # blind for the device
    second = await portal.post("/shifts", json={"opening_float": 0}, headers=tenant.as_device)
    assert second.status_code == 409 and code(second) == "shift_already_open"

    sale = await cash_sale(portal, tenant)
    card_order = await ring_up(portal, tenant)
    card_bill = await bill(portal, tenant, card_order["id"])
    assert (await pay(portal, tenant, card_bill["id"], card_bill["total_amount"])).status_code == 201
    for kind, amount in (("paid_in", 2_000), ("paid_out", 500)):
        moved = await portal.post(
            f"/shifts/{shift['id']}/cash-movements",
            json={"kind": kind, "amount": amount, "note": "change"},
            headers=tenant.as_device,
        )
        assert moved.status_code == 201, moved.text

    as_device = (await portal.get(f"/shifts/{shift['id']}", headers=tenant.as_device)).json()
    assert as_device["expected_cash"] is None and as_device["cash_sales"] is None
    as_merchant = (await portal.get(f"/shifts/{shift['id']}", headers=tenant.as_merchant)).json()
    expected = 10_000 + sale["amount"] + 2_000 - 500
    assert as_merchant["expected_cash"] == expected

    closed = await portal.post(
        f"/shifts/{shift['id']}/close", json={"counted_cash": expected - 300}, headers=tenant.as_device
    )
    assert closed.status_code == 200, closed.text
    body = closed.json()
    assert body["status"] == "closed"
    assert (body["cash_sales"], body["cash_refunds"], body["paid_in"], body["paid_out"]) == (
        sale["amount"],
        0,
        2_000,
        500,
    )
    assert (body["expected_cash"], body["counted_cash"], body["difference"]) == (expected, expected - 300, -300)
    again = await portal.post(f"/shifts/{shift['id']}/close", json={"counted_cash": 1}, headers=tenant.as_device)
    assert again.status_code == 409 and code(again) == "shift_closed"
    late_move = await portal.post(
        f"/shifts/{shift['id']}/cash-movements", json={"kind": "paid_in", "amount": 1}, headers=tenant.as_device
    )
    assert late_move.status_code == 409

    async with portal_app.state.engine.connect() as conn:
        recorded = set(
            (
                await conn.scalars(
                    text("SELECT DISTINCT type FROM outbox WHERE merchant_id = :m"), {"m": tenant.merchant_id}
                )
            ).all()
        )
    assert {"shift.opened", "shift.closed"} <= recorded
    documented = set(yaml.safe_load(ASYNCAPI.read_text())["channels"]["orderEvents"]["parameters"]["type"]["enum"])
    assert {"shift.opened", "shift.closed", "closeout.created"} <= documented

    # The shift closed today appears in today's Z report; its cash is not counted twice.
    store = await set_store(portal, tenant, timezone="UTC")
    day0 = first_day(store)
    at(portal_app, datetime.combine(day0 + timedelta(days=1), time(4, 5), tzinfo=UTC))
    report = (await close(portal, tenant)).json()
    assert [s["id"] for s in report["shifts"]] == [shift["id"]]
    assert report["shifts"][0]["difference"] == -300
    assert report["carried_over"]["pending_payments"] == {"count": 1, "amount": card_bill["total_amount"]}


async def test_shifts_are_tenant_isolated(portal: httpx.AsyncClient, make_tenant: MakeTenant) -> None:
    mine, theirs = await make_tenant(), await make_tenant()
    shift = (await portal.post("/shifts", json={"opening_float": 0}, headers=mine.as_device)).json()
    for request in (
        portal.get(f"/shifts/{shift['id']}", headers=theirs.as_merchant),
        portal.post(f"/shifts/{shift['id']}/close", json={"counted_cash": 0}, headers=theirs.as_device),
        portal.post(
            f"/shifts/{shift['id']}/cash-movements", json={"kind": "paid_in", "amount": 5}, headers=theirs.as_merchant
        ),
        portal.post("/shifts", json={"store_id": mine.store_id, "opening_float": 0}, headers=theirs.as_merchant),
        portal.post(f"/stores/{mine.store_id}/closeouts", json={}, headers=theirs.as_merchant),
        portal.get(f"/stores/{mine.store_id}/closeouts", headers=theirs.as_merchant),
        # A device acts on its own store only.
        portal.post("/shifts", json={"store_id": mine.other_store_id, "opening_float": 0}, headers=mine.as_device),
        portal.get(f"/stores/{mine.other_store_id}/closeouts", headers=mine.as_device),
    ):
        response = await request
        assert response.status_code == 404, response.text
    listed = (await portal.get("/shifts", headers=theirs.as_merchant)).json()
    assert listed["items"] == []


# ---------------------------------------------------------------- sealed reports


async def _sealed_day(portal: httpx.AsyncClient, app: FastAPI, tenant: Tenant, days: int) -> list[dict[str, Any]]:
    store = await set_store(portal, tenant, timezone="UTC")
    day0 = first_day(store)
    reports = []
    for n in range(days):
        at(app, datetime.combine(day0 + timedelta(days=n), time(12, 0), tzinfo=UTC))
        await cash_sale(portal, tenant)
        at(app, datetime.combine(day0 + timedelta(days=n + 1), time(4, 5), tzinfo=UTC))
        response = await close(portal, tenant)
        assert response.status_code == 201, response.text
        reports.append(response.json())
    return reports


async def test_the_database_refuses_to_change_or_delete_a_sealed_report(
    portal: httpx.AsyncClient, portal_app: FastAPI, tenant: Tenant
) -> None:
    [report] = await _sealed_day(portal, portal_app, tenant, 1)
    async with portal_app.state.engine.connect() as conn:
        for statement in (
            "UPDATE z_reports SET gross_sales = gross_sales + 1, net_sales = net_sales + 1 WHERE id = :id",
            "DELETE FROM z_reports WHERE id = :id",
            "TRUNCATE z_reports",
        ):
            with pytest.raises(DBAPIError, match="sealed"):
                await conn.execute(text(statement), {"id": report["id"]})
            await conn.rollback()


async def test_verify_finds_a_report_altered_behind_the_triggers_back(
    portal: httpx.AsyncClient, portal_app: FastAPI, tenant: Tenant, database_url: str
) -> None:
    reports = await _sealed_day(portal, portal_app, tenant, 3)
    assert (await chain(portal, tenant))["verification"]["intact"]
    async with portal_app.state.engine.begin() as conn:
        # Someone with the power to disable the trigger (a superuser) edits day 2 in place.
        await conn.execute(text("ALTER TABLE z_reports DISABLE TRIGGER z_reports_sealed_rows"))
        await conn.execute(
            text("UPDATE z_reports SET gross_sales = gross_sales - 100, net_sales = net_sales - 100 WHERE id = :id"),
            {"id": reports[1]["id"]},
        )
        await conn.execute(text("ALTER TABLE z_reports ENABLE TRIGGER z_reports_sealed_rows"))
    verification = (await chain(portal, tenant))["verification"]
    assert verification["intact"] is False and verification["broken_at"] == 2
    assert "hash" in verification["problem"]
    operator = smartpos("closeout", "verify", "--store", tenant.store_id, env={"PORTAL_DATABASE_URL": database_url})
    assert operator.returncode == 1 and f"{tenant.store_id}: BROKEN at report 2" in operator.stdout


async def test_smartpos_closeout_verify_checks_a_saved_chain_offline(
    portal: httpx.AsyncClient, portal_app: FastAPI, tenant: Tenant, tmp_path: Path, database_url: str
) -> None:
    await _sealed_day(portal, portal_app, tenant, 2)
    saved = tmp_path / "closeouts.json"
    saved.write_text(json.dumps(await chain(portal, tenant)))
    good = smartpos("closeout", "verify", "--file", str(saved))
    assert good.returncode == 0 and f"{tenant.store_id}: intact (2 reports)" in good.stdout, good.stderr
    from_db = smartpos("closeout", "verify", "--store", tenant.store_id, env={"PORTAL_DATABASE_URL": database_url})
    assert from_db.returncode == 0 and "intact (2 reports)" in from_db.stdout, from_db.stderr
    tampered = json.loads(saved.read_text())
    tampered["items"][1]["gross_sales"] += 1  # one figure of the first day
    saved.write_text(json.dumps(tampered))
    bad = smartpos("closeout", "verify", "--file", str(saved))
    assert bad.returncode == 1 and "BROKEN at report 1" in bad.stdout


@pytest.fixture
def database_url(databases: dict[str, TestDatabase]) -> str:
    return databases["portal"].url


def smartpos(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "smartpos_cli", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        cwd=ROOT,
        timeout=60,
    )


async def test_two_closes_of_one_day_at_once_seal_it_once(
    portal: httpx.AsyncClient, portal_app: FastAPI, tenant: Tenant
) -> None:
    store = await set_store(portal, tenant, timezone="UTC")
    at(portal_app, datetime.combine(first_day(store) + timedelta(days=1), time(5, 0), tzinfo=UTC))
    responses = await asyncio.gather(*(close(portal, tenant, first_day(store)) for _ in range(6)))
    assert sorted(r.status_code for r in responses) == [201] + [409] * 5
    assert (await chain(portal, tenant))["verification"]["reports"] == 1


# ---------------------------------------------------------------- settlement reconciliation


async def settled(app: FastAPI, store_id: str, kind: str, reference: str, amount: int, at_: datetime) -> None:
    """The gateway (here: the test standing in for it) settled this."""
    await SettlementLedger(app.state.redis).record(store_id, SettlementEntry(kind, reference, amount, at_))


async def card_sale(portal: httpx.AsyncClient, tenant: Tenant, quantities: tuple[int, ...] = (1, 1)) -> dict[str, Any]:
    order = await ring_up(portal, tenant, quantities)
    b = await bill(portal, tenant, order["id"])
    payment = (await pay(portal, tenant, b["id"], b["total_amount"])).json()
    response = await webhook(portal, new_id("evt"), payment["pgw_reference"], payment["amount"])
    assert response.status_code == 200, response.text
    return payment  # type: ignore[no-any-return]


async def test_reconciliation_lists_what_the_gateway_never_settled_and_what_it_settled_differently(
    portal: httpx.AsyncClient, portal_app: FastAPI, tenant: Tenant, make_tenant: MakeTenant
) -> None:
    store = await set_store(portal, tenant, timezone="UTC")
    day0 = first_day(store)
    noon = datetime.combine(day0, time(12, 0), tzinfo=UTC)
    at(portal_app, noon)
    good = await card_sale(portal, tenant, (1, 1))
    unsettled = await card_sale(portal, tenant, (2, 1))
    short = await card_sale(portal, tenant, (1, 2))
    refund = await portal.post(
        "/refunds",
        json={"payment_id": good["id"], "amount": 100},
        headers={**tenant.as_device, "Idempotency-Key": new_id("evt")},
    )
    assert refund.status_code == 201, refund.text
    assert (
        await webhook(portal, new_id("evt"), refund.json()["pgw_reference"], 100, "refund.succeeded")
    ).status_code == 200
    await cash_sale(portal, tenant)  # cash never goes through the gateway: not reconciled

    await settled(portal_app, tenant.store_id, "payment", good["pgw_reference"], good["amount"], noon)
    await settled(portal_app, tenant.store_id, "refund", refund.json()["pgw_reference"], 100, noon)
    await settled(portal_app, tenant.store_id, "payment", short["pgw_reference"], short["amount"] - 7, noon)
    await settled(portal_app, tenant.store_id, "payment", "pgwref_NOT_OURS", 4_200, noon)
    # Settled just before midnight on the gateway's clock, confirmed just after on ours: not a difference.
    at(portal_app, datetime.combine(day0 + timedelta(days=1), time(4, 0, 30), tzinfo=UTC))
    late = await card_sale(portal, tenant)
    await settled(
        portal_app,
        tenant.store_id,
        "payment",
        late["pgw_reference"],
        late["amount"],
        datetime.combine(day0 + timedelta(days=1), time(3, 59, 50), tzinfo=UTC),
    )

    live = await portal.get(f"/stores/{tenant.store_id}/reconciliations/{day0}", headers=tenant.as_merchant)
    assert live.status_code == 200, live.text
    result = live.json()
    assert (result["stored"], result["sealed"], result["status"]) == (False, False, "differences")
    assert result["matched"] == {"count": 2, "amount": good["amount"] + 100}
    assert [m["pgw_reference"] for m in result["missing_at_gateway"]] == [unsettled["pgw_reference"]]
    assert result["amount_mismatch"] == [
        {
            "kind": "payment",
            "id": short["id"],
            "pgw_reference": short["pgw_reference"],
            "platform_amount": short["amount"],
            "gateway_amount": short["amount"] - 7,
        }
    ]
    assert [(m["pgw_reference"], m["amount"], m["platform_status"]) for m in result["missing_in_platform"]] == [
        ("pgwref_NOT_OURS", 4_200, None)
    ]
    other = await make_tenant()
    hidden = await portal.get(f"/stores/{tenant.store_id}/reconciliations/{day0}", headers=other.as_merchant)
    assert hidden.status_code == 404
    bad_date = await portal.get(f"/stores/{tenant.store_id}/reconciliations/yesterday", headers=tenant.as_merchant)
    assert bad_date.status_code == 422
