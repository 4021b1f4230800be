"""Events are never lost: NATS down delays them without failing a request; several relays keep each merchant's
events in order; a poison event ends in the dead-letter table after bounded redelivery."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import nats
import pytest
from fastapi import FastAPI
from nats.js.api import ConsumerConfig, DeliverPolicy
from sqlalchemy import text

from portal.main import build_app
from portal.models import OutboxEvent
from smartpos_shared.db import Transaction
from smartpos_shared.events import OutboxRelay, add_event
from smartpos_shared.ids import new_id
from tests.portal.helpers import ring_up
from tests.support.apps import running
from tests.support.databases import TestDatabase
from tests.support.portal_fixtures import PORTAL, Tenant, portal_settings
from tests.support.processes import PrivateNats


async def _collect(url: str, subject: str, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        sub = await js.subscribe(
            subject, ordered_consumer=True, config=ConsumerConfig(deliver_policy=DeliverPolicy.ALL)
        )
        events: list[dict[str, Any]] = []
        while len(events) < count:
            msg = await sub.next_msg(timeout=timeout)
            events.append(json.loads(msg.data))
        return events
    finally:
        await nc.close()


@pytest.fixture
async def only_our_relays(portal_app: FastAPI) -> AsyncIterator[None]:
    """The session's in-process portal shares this outbox; its relay (on the machine's NATS) must not take our rows.
    Tests that need a tenant ask for it first: its store.created event must still go out (device-auth needs it)."""
    await portal_app.state.outbox_relay.stop()
    try:
        yield
    finally:
        await portal_app.state.outbox_relay.start()


async def test_nats_down_during_order_creation_fails_no_request_and_loses_no_event(
    databases: dict[str, TestDatabase], auth_app: FastAPI, tenant: Tenant, only_our_relays: None
) -> None:
    async def jwks() -> dict[str, Any]:
        keys: dict[str, Any] = await auth_app.state.keyring.jwks()
        return keys

    broker = PrivateNats().start()
    app = build_app(portal_settings(databases, nats_url=broker.url), jwks_loader=jwks)
    try:
        async with running(app, PORTAL) as portal:
            first = await ring_up(portal, tenant)
            broker.stop()
            during = [await ring_up(portal, tenant) for _ in range(5)]  # every request succeeds
            broker.start()  # same port, same store directory
            events = await _collect(broker.url, f"smartpos.{tenant.merchant_id}.order.created", 6, timeout=15)
            assert [e["subject"] for e in events] == [first["id"]] + [o["id"] for o in during]
    finally:
        broker.stop()


@pytest.mark.usefixtures("only_our_relays")
async def test_several_relays_publish_each_merchants_events_once_and_in_order(
    databases: dict[str, TestDatabase], portal_app: FastAPI
) -> None:
    broker = PrivateNats().start()
    connection = await _nats_connection(broker.url)
    merchants = [new_id("mer") for _ in range(4)]
    try:
        async with portal_app.state.sessionmaker() as session, session.begin():
            transaction = Transaction(session)
            for i in range(50):
                for merchant_id in merchants:
                    add_event(
                        transaction, OutboxEvent, source="test", event_type="order.updated", merchant_id=merchant_id,
                        store_id=None, subject=f"ord_{merchant_id}", version=i + 1, data={"n": i},
                    )  # fmt: skip
        dsn = databases["portal"].url
        relays = [OutboxRelay(dsn, connection, OutboxEvent, batch_size=7, listen=False) for _ in range(3)]
        await asyncio.gather(*(_drain(relay) for relay in relays))
        for relay in relays:
            await relay.stop()
        for merchant_id in merchants:
            events = await _collect(broker.url, f"smartpos.{merchant_id}.order.updated", 50)
            assert [e["version"] for e in events] == list(range(1, 51)), merchant_id
        async with portal_app.state.engine.connect() as conn:
            waiting = await conn.scalar(
                text("SELECT count(*) FROM outbox WHERE published_at IS NULL AND merchant_id = ANY(:m)"),
                {"m": merchants},
            )
        assert waiting == 0
    finally:
        await connection.close()
        broker.stop()


async def _drain(relay: OutboxRelay) -> None:
    for _ in range(100):
        if await relay.publish_pending() == 0:
            await asyncio.sleep(0.01)
            if await relay.publish_pending() == 0:
                return


async def _nats_connection(url: str):  # type: ignore[no-untyped-def]
    from smartpos_shared.nats import NatsConnection

    connection = NatsConnection(url, "test-relay")
    await connection.start()
    assert await connection.wait_connected(5)
    return connection


async def test_the_relay_as_its_own_process_publishes_what_the_api_commits(
    databases: dict[str, TestDatabase], auth_app: FastAPI, tenant: Tenant, only_our_relays: None
) -> None:
    """Production shape: API processes with PORTAL_RELAY_IN_PROCESS=false and `python -m portal.relay` beside them."""
    import os
    import subprocess
    import sys

    async def jwks() -> dict[str, Any]:
        keys: dict[str, Any] = await auth_app.state.keyring.jwks()
        return keys

    broker = PrivateNats().start()
    env = {
        **os.environ,
        "PORTAL_DATABASE_URL": databases["portal"].url,
        "NATS_URL": broker.url,
        "SMARTPOS_LOG_LEVEL": "WARNING",
    }
    relay = subprocess.Popen([sys.executable, "-m", "portal.relay"], env=env)
    app = build_app(portal_settings(databases, nats_url=broker.url, relay_in_process=False), jwks_loader=jwks)
    try:
        async with running(app, PORTAL) as portal:
            assert getattr(app.state, "outbox_relay", None) is None  # nothing publishes in the API process
            orders = [await ring_up(portal, tenant) for _ in range(3)]
            events = await _collect(broker.url, f"smartpos.{tenant.merchant_id}.order.created", 3, timeout=10)
            assert [e["subject"] for e in events] == [o["id"] for o in orders]
    finally:
        relay.terminate()
        assert relay.wait(10) == 0  # stops cleanly on SIGTERM
        broker.stop()
