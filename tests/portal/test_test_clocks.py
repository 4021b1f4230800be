"""Test clocks (API.md "Sandbox"): a merchant's business time frozen and advanced through `/test-clocks`.

What the merchant's terminals write is stamped with the clock's time while other merchants keep real time; access
tokens keep working; advancing the clock by a day makes a real `python -m portal.scheduler` seal that merchant's
day within seconds and touch no other merchant's store.
"""

from __future__ import annotations

import subprocess
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from portal.main import build_app
from tests.portal.helpers import bill, pay, ring_up
from tests.support.databases import TestDatabase
from tests.support.environment import redis_url
from tests.support.portal_fixtures import PORTAL, MakeTenant, Tenant, bearer, portal_settings, scheduler


def code(response: httpx.Response) -> str:
    return str(response.json()["type"]).rsplit("/", 1)[-1]


async def make_clock(portal: httpx.AsyncClient, tenant: Tenant, frozen: datetime) -> dict[str, Any]:
    created = await portal.post("/test-clocks", json={"frozen_time": frozen.isoformat()}, headers=tenant.as_merchant)
    assert created.status_code == 201, created.text
    return created.json()  # type: ignore[no-any-return]


async def cash_sale(portal: httpx.AsyncClient, tenant: Tenant) -> dict[str, Any]:
    order = await ring_up(portal, tenant)
    billed = await bill(portal, tenant, order["id"])
    paid = await pay(portal, tenant, billed["id"], billed["total_amount"], "cash")
    assert paid.status_code == 201, paid.text
    return paid.json()  # type: ignore[no-any-return]


async def test_a_merchants_sales_follow_its_clock_and_no_one_elses(
    portal: httpx.AsyncClient, make_tenant: MakeTenant
) -> None:
    clocked, other = await make_tenant(), await make_tenant()
    frozen = datetime(2026, 11, 20, 9, 30, tzinfo=UTC)
    clock = await make_clock(portal, clocked, frozen)
    assert (clock["status"], clock["merchant_id"], clock["id"][:4]) == ("ready", clocked.merchant_id, "clk_")

    sale = await cash_sale(portal, clocked)  # the device's access token keeps working: tokens keep real time
    assert datetime.fromisoformat(sale["created_at"]) == frozen
    elsewhere = await cash_sale(portal, other)
    assert abs(datetime.fromisoformat(elsewhere["created_at"]) - datetime.now(UTC)) < timedelta(minutes=5)

    advanced = await portal.post(
        f"/test-clocks/{clock['id']}/advance",
        json={"to": (frozen + timedelta(hours=2)).isoformat()},
        headers=clocked.as_merchant,
    )
    assert advanced.status_code == 200, advanced.text
    assert (advanced.json()["status"], advanced.json()["version"]) == ("advancing", 2)
    later = await cash_sale(portal, clocked)
    assert datetime.fromisoformat(later["created_at"]) == frozen + timedelta(hours=2)

    # Deleted: the merchant is back on real time.
    assert (await portal.delete(f"/test-clocks/{clock['id']}", headers=clocked.as_merchant)).status_code == 204
    after = await cash_sale(portal, clocked)
    assert abs(datetime.fromisoformat(after["created_at"]) - datetime.now(UTC)) < timedelta(minutes=5)


async def test_clocks_refuse_what_makes_no_sense_and_stay_in_their_tenant(
    portal: httpx.AsyncClient, make_tenant: MakeTenant, admin_token: str
) -> None:
    mine, theirs = await make_tenant(), await make_tenant()
    now = datetime.now(UTC).replace(microsecond=0)
    clock = await make_clock(portal, mine, now)
    url = f"/test-clocks/{clock['id']}"

    again = await portal.post("/test-clocks", json={"frozen_time": now.isoformat()}, headers=mine.as_merchant)
    assert (again.status_code, code(again)) == (409, "test_clock_exists")
    naive = await portal.post("/test-clocks", json={"frozen_time": "2026-11-20T09:30:00"}, headers=theirs.as_merchant)
    assert naive.status_code == 422  # a time without its offset means nothing
    far = await portal.post("/test-clocks", json={"frozen_time": "2040-01-01T00:00:00Z"}, headers=theirs.as_merchant)
    assert (far.status_code, code(far)) == (422, "frozen_time_out_of_range")
    device = await portal.post("/test-clocks", json={"frozen_time": now.isoformat()}, headers=theirs.as_device)
    assert device.status_code == 403

    back = await portal.post(
        f"{url}/advance", json={"to": (now - timedelta(seconds=1)).isoformat()}, headers=mine.as_merchant
    )
    assert (back.status_code, code(back)) == (422, "advance_not_forward")
    too_far = await portal.post(
        f"{url}/advance", json={"to": (now + timedelta(days=800)).isoformat()}, headers=mine.as_merchant
    )
    assert (too_far.status_code, code(too_far)) == (422, "advance_too_far")
    assert (
        await portal.post(f"{url}/advance", json={"to": now.isoformat()}, headers=mine.as_device)
    ).status_code == 404

    # Another merchant neither sees nor moves nor deletes it; an admin sees it.
    assert (await portal.get(url, headers=theirs.as_merchant)).status_code == 404
    moved = await portal.post(
        f"{url}/advance", json={"to": (now + timedelta(days=1)).isoformat()}, headers=theirs.as_merchant
    )
    assert moved.status_code == 404
    assert (await portal.delete(url, headers=theirs.as_merchant)).status_code == 404
    assert (await portal.get(url, headers=bearer(admin_token))).json()["frozen_time"] == clock["frozen_time"]

    first = await portal.post(
        f"{url}/advance", json={"to": (now + timedelta(hours=1)).isoformat()}, headers=mine.as_merchant
    )
    assert first.status_code == 200
    # No scheduler runs in this test: the clock stays `advancing`, and a second advance waits for it.
    second = await portal.post(
        f"{url}/advance", json={"to": (now + timedelta(hours=2)).isoformat()}, headers=mine.as_merchant
    )
    assert (second.status_code, code(second)) == (409, "test_clock_advancing")


@pytest.fixture
def running_scheduler(scheduler_env: dict[str, str]) -> Any:
    # A pass at start, then only what clocks trigger (the next regular pass is an hour away).
    proc = scheduler({**scheduler_env, "SCHEDULER_INTERVAL_SECONDS": "3600", "REDIS_URL": redis_url()})
    yield proc
    proc.terminate()
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


async def test_advancing_a_clock_by_a_day_seals_that_merchants_day_within_seconds(
    portal: httpx.AsyncClient, make_tenant: MakeTenant, running_scheduler: subprocess.Popen[str]
) -> None:
    clocked, other = await make_tenant(), await make_tenant()
    await portal.patch(f"/stores/{clocked.store_id}", json={"timezone": "Asia/Tokyo"}, headers=clocked.as_merchant)
    now = datetime.now(UTC).replace(microsecond=0)
    clock = await make_clock(portal, clocked, now)
    other_clock = await make_clock(portal, other, now)  # a clock too, left where it is
    sold = [await cash_sale(portal, clocked) for _ in range(2)]
    await cash_sale(portal, other)

    started = time.monotonic()
    advanced = await portal.post(
        f"/test-clocks/{clock['id']}/advance",
        json={"to": (now + timedelta(days=1, hours=1)).isoformat()},
        headers=clocked.as_merchant,
    )
    assert advanced.status_code == 200, advanced.text

    async def sealed() -> list[dict[str, Any]]:
        reports = await portal.get(f"/stores/{clocked.store_id}/closeouts", headers=clocked.as_merchant)
        return reports.json()["items"]  # type: ignore[no-any-return]

    reports: list[dict[str, Any]] = []
    while time.monotonic() - started < 15 and not reports:
        assert running_scheduler.poll() is None, running_scheduler.stderr.read() if running_scheduler.stderr else ""
        reports = await sealed()
        time.sleep(0.1)
    elapsed = time.monotonic() - started
    assert len(reports) == 1, f"no Z report {elapsed:.1f} s after the advance"
    report = reports[0]
    tokyo_date = (now + timedelta(hours=9) - timedelta(hours=4)).date()  # the business day (closing 04:00)
    assert report["business_date"] == tokyo_date.isoformat()
    assert report["net_sales"] == sum(p["amount"] for p in sold) and report["orders"] == 2

    async def ready() -> bool:
        got = await portal.get(f"/test-clocks/{clock['id']}", headers=clocked.as_merchant)
        return bool(got.json()["status"] == "ready")

    while time.monotonic() - started < 15 and not await ready():
        time.sleep(0.1)
    assert await ready()
    # The other merchant: its store's day is not over at its own clock, nothing sealed, its clock untouched.
    theirs = await portal.get(f"/stores/{other.store_id}/closeouts", headers=other.as_merchant)
    assert theirs.json()["items"] == []
    untouched = (await portal.get(f"/test-clocks/{other_clock['id']}", headers=other.as_merchant)).json()
    assert (untouched["status"], untouched["version"]) == ("ready", 1)


async def test_production_has_no_test_clocks(databases: dict[str, TestDatabase], portal: httpx.AsyncClient) -> None:
    production = build_app(portal_settings(databases, env="production"))
    transport = httpx.ASGITransport(app=production)
    async with httpx.AsyncClient(transport=transport, base_url=PORTAL) as client:
        body = {"frozen_time": "2026-11-20T09:30:00Z"}
        assert (await client.post("/test-clocks", json=body)).status_code == 404
        assert (await client.post(f"/test-clocks/clk_{'0' * 26}/advance", json=body)).status_code == 404
    assert not [path for path in production.openapi()["paths"] if path.startswith("/test-clocks")]
    # The sandbox portal has them (401 without a token: the route exists).
    assert (await portal.post("/test-clocks", json=body)).status_code == 401
