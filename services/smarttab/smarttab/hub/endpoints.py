"""`WS /ws/orders` and `GET /stores/{store_id}/live`."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from datetime import UTC, datetime
from datetime import time as dtime
from typing import Annotated, Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Path, Query, WebSocket, WebSocketDisconnect
from pydantic import BaseModel
from starlette.websockets import WebSocketState

from smartpos_shared import web
from smartpos_shared.auth import Principal, PrincipalDep, Role, authenticate_websocket
from smartpos_shared.db import SessionDep
from smartpos_shared.errors import DomainError, Forbidden, NotFound, Unauthorized, problem_schema

from ..projections import repository
from .hub import CLOSE_EXPIRED, CLOSE_GONE, CLOSE_SLOW, SLOW_CLOSE_CODE, Hub, Subscriber

router = APIRouter(tags=["live"])

ULID = r"[0-9A-HJKMNP-TV-Z]{26}"


async def _refuse(websocket: WebSocket, code: int, reason: str) -> None:
    await websocket.accept()
    await websocket.close(code=code, reason=reason)


@router.websocket("/ws/orders")
async def orders_feed(
    websocket: WebSocket,
    store_id: Annotated[str | None, Query(pattern=rf"^sto_{ULID}$")] = None,
    merchant_id: Annotated[str | None, Query(pattern=rf"^mer_{ULID}$")] = None,
    since: Annotated[int | None, Query(ge=0)] = None,
) -> None:
    """Live order updates of the token's merchant (a device: its store). `since=<seq>` replays what was missed."""
    try:
        principal = await _principal(websocket)
    except DomainError as exc:
        await _refuse(websocket, 4401 if exc.status == 401 else 4403, exc.detail[:120])
        return
    if principal.role is Role.admin:
        if merchant_id is None:
            await _refuse(websocket, 4400, "an admin names the merchant (merchant_id)")
            return
        channel = merchant_id
    else:
        assert principal.merchant_id is not None
        if merchant_id is not None and merchant_id != principal.merchant_id:
            await _refuse(websocket, 4403, "not your merchant")
            return
        channel = principal.merchant_id
    store_filter = store_id
    if principal.role is Role.device:
        if store_id is not None and store_id != principal.store_id:
            await _refuse(websocket, 4403, "a device follows its own store only")
            return
        store_filter = principal.store_id

    hub: Hub = websocket.app.state.hub
    subscriber = Subscriber(
        channel, store_filter, hub.max_queue, buffering=since is not None, expires_at=principal.expires_at
    )
    hub.register(subscriber)
    try:
        await websocket.accept()
        last = since or 0
        if since is not None:
            replay = await hub.replay(channel, store_filter, since)
            if not replay.complete:
                await websocket.send_text(
                    json.dumps({"type": "resync_required", "reason": replay.reason, "seq": since})
                )
            for seq, payload in replay.messages:
                await websocket.send_text(payload)
                last = seq
            subscriber.release(after_seq=last)
        subscriber.last_sent = time.time()
        await _pump(websocket, subscriber)
    except WebSocketDisconnect:
        pass
    finally:
        hub.unregister(subscriber)
        if websocket.application_state is WebSocketState.CONNECTED:
            with contextlib.suppress(Exception):
                await websocket.close()


async def _principal(websocket: WebSocket) -> Principal:
    """A bearer token (header or `?access_token=`), or the dashboard's session cookie — then only from a page of
    this service (the Origin header): another site's page must not ride a signed-in person's cookie."""
    has_token = websocket.headers.get("authorization") or websocket.query_params.get("access_token")
    if has_token or web.pages_of(websocket.app).cookie not in websocket.cookies:
        return await authenticate_websocket(websocket)
    public = urlsplit(websocket.app.state.settings.public_url)
    if websocket.headers.get("origin") != f"{public.scheme}://{public.netloc}":
        raise Forbidden("a session cookie is accepted from the dashboard's own pages only")
    principal = await web.principal_of(websocket)
    if principal is None:
        raise Unauthorized("the session ended: sign in again", error="invalid_token")
    return principal


async def _pump(websocket: WebSocket, subscriber: Subscriber) -> None:
    """Send what the queue holds, in order. Disconnects, lag, expiry and heartbeats arrive as control items, so
    each event costs one queue read and one send."""

    async def watch_client() -> None:
        with contextlib.suppress(Exception):
            while (await websocket.receive())["type"] != "websocket.disconnect":
                pass
        subscriber.control(CLOSE_GONE)

    reader = asyncio.create_task(watch_client())
    try:
        while True:
            _, item = await subscriber.queue.get()
            if item == CLOSE_GONE:
                return
            if item == CLOSE_SLOW:
                await websocket.close(code=SLOW_CLOSE_CODE, reason="too slow; reconnect with since")
                return
            if item == CLOSE_EXPIRED:
                await websocket.close(code=4401, reason="token expired; reconnect with a new token and since")
                return
            await websocket.send_text(item)
            subscriber.last_sent = time.time()
    finally:
        reader.cancel()


class TodayTotals(BaseModel):
    orders: int
    completed: int
    revenue: int


class StoreLive(BaseModel):
    store_id: str
    open_orders: list[dict[str, Any]]
    today: TodayTotals


@router.get(
    "/stores/{store_id}/live",
    summary="A store right now: open orders and today's (UTC) totals, built from events",
    responses={
        401: problem_schema("Missing, invalid or expired access token"),
        403: problem_schema("A role this service does not serve (`role_not_served`: partner tokens)"),
        404: problem_schema("Unknown store, or another tenant's (never revealed)"),
        422: problem_schema("Malformed store id"),
    },
)
async def store_live(
    store_id: Annotated[str, Path(pattern=rf"^sto_{ULID}$")],
    principal: PrincipalDep,
    session: SessionDep,
) -> StoreLive:
    # One answer for a store that does not exist and for another tenant's: 404 (no existence oracle).
    merchant_id = await repository.store_owner(session, store_id)
    if merchant_id is None or (principal.role is not Role.admin and merchant_id != principal.merchant_id):
        raise NotFound("store not found")
    if principal.role is Role.device and store_id != principal.store_id:
        raise NotFound("store not found")
    midnight = datetime.combine(datetime.now(UTC).date(), dtime(0), tzinfo=UTC)
    orders, completed, revenue = await repository.totals_since(session, merchant_id, store_id, midnight)
    return StoreLive(
        store_id=store_id,
        open_orders=await repository.open_orders(session, merchant_id, store_id, 200),
        today=TodayTotals(orders=orders, completed=completed, revenue=revenue),
    )
