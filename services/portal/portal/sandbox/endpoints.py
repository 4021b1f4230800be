"""HTTP for test clocks (sandbox only: `build_app` mounts this router unless `SMARTPOS_ENV=production`)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal

import asyncpg
from fastapi import APIRouter, Path, status
from fastapi.responses import Response
from pydantic import AwareDatetime, BaseModel

from smartpos_shared.errors import Conflict, NotFound, Unprocessable
from smartpos_shared.events import certification_run
from smartpos_shared.ids import new_id
from smartpos_shared.schemas import RequestModel

from ..checkout.model import dumps
from ..context import ContextDep, RequestContext
from ..errors import COMMON_ERRORS, CONFLICT, NOT_FOUND
from ..schemas import ULID, MerchantId
from ..tenancy import merchant_for_write, tenant_for
from .clocks import COLUMNS, clock_body

router = APIRouter(prefix="/test-clocks", tags=["sandbox"], responses=COMMON_ERRORS)
ClockIdPath = Annotated[str, Path(pattern=rf"^clk_{ULID}$")]
JSON = "application/json"
# How far a clock may stand from real time, and move in one advance: the overnight run seals every day in between.
MAX_DISTANCE = timedelta(days=5 * 366)
MAX_ADVANCE = timedelta(days=2 * 366)


class ClockCreate(RequestModel):
    merchant_id: MerchantId | None = None
    frozen_time: AwareDatetime


class ClockAdvance(RequestModel):
    to: AwareDatetime


class ClockPublic(BaseModel):
    id: str
    merchant_id: str
    frozen_time: datetime
    status: Literal["ready", "advancing"]
    version: int
    created_at: datetime
    updated_at: datetime


# Each write NOTIFYs (delivered at commit) so every portal process and the schedulers follow the clock.
INSERT = """
WITH c AS (
  INSERT INTO test_clocks (id, merchant_id, frozen_time, status, version, created_at, updated_at)
  SELECT $1, m.id, $3, 'ready', 1, $4, $4 FROM merchants m WHERE m.id = $2
  RETURNING id, merchant_id, frozen_time, status, version, created_at, updated_at
)
SELECT c.*, pg_notify('smartpos_test_clock', c.merchant_id) FROM c"""
RESOLVE = "SELECT merchant_id FROM test_clocks WHERE id = $1 /* tenant-resolution */"
GET = f"SELECT {COLUMNS} FROM test_clocks WHERE id = $1 AND merchant_id = $2"  # noqa: S608 (constants only)
ADVANCE = """
WITH c AS (
  UPDATE test_clocks SET frozen_time = $3, status = 'advancing', version = version + 1, updated_at = $4,
                         certification_run = $5
  WHERE id = $1 AND merchant_id = $2 AND status = 'ready' AND frozen_time < $3
  RETURNING id, merchant_id, frozen_time, status, version, created_at, updated_at
)
SELECT c.*, pg_notify('smartpos_test_clock', c.merchant_id) FROM c"""
DELETE = """
WITH c AS (DELETE FROM test_clocks WHERE id = $1 AND merchant_id = $2 RETURNING merchant_id)
SELECT pg_notify('smartpos_test_clock', c.merchant_id) FROM c"""


def _real_now(ctx: RequestContext) -> datetime:
    return datetime.fromtimestamp(ctx.services.real_clock(), UTC)


def _reply(ctx: RequestContext, row: asyncpg.Record, status_code: int = 200) -> Response:
    clocks = ctx.services.test_clocks
    if clocks is not None:  # this process follows at once; the others on the notification
        clocks.set(row["merchant_id"], row["frozen_time"])
    return Response(dumps(clock_body(row)), status_code=status_code, media_type=JSON)


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=ClockPublic,
    responses={**NOT_FOUND, **CONFLICT},
    summary="Give a merchant a test clock: its business time is frozen_time until advanced (sandbox only)",
)
async def create_clock(body: ClockCreate, ctx: ContextDep) -> Response:
    assert ctx.principal is not None
    merchant_id = merchant_for_write(ctx.principal, body.merchant_id)
    real_now = _real_now(ctx)
    if abs(body.frozen_time - real_now) > MAX_DISTANCE:
        raise Unprocessable("frozen_time is more than five years from now", code="frozen_time_out_of_range")
    try:
        row = await ctx.db.fetchrow(INSERT, new_id("clk"), merchant_id, body.frozen_time, real_now)
    except asyncpg.UniqueViolationError:
        raise Conflict("the merchant already has a test clock", code="test_clock_exists") from None
    if row is None:
        raise NotFound("merchant not found")
    return _reply(ctx, row, 201)


async def _tenant(ctx: RequestContext, clock_id: str) -> str:
    assert ctx.principal is not None
    tenant = await tenant_for(ctx.principal, lambda: ctx.db.fetchval(RESOLVE, clock_id))
    return tenant.merchant_id


@router.get("/{clock_id}", response_model=ClockPublic, responses=NOT_FOUND, summary="Get a test clock")
async def get_clock(clock_id: ClockIdPath, ctx: ContextDep) -> Response:
    row = await ctx.db.fetchrow(GET, clock_id, await _tenant(ctx, clock_id))
    if row is None:
        raise NotFound("test clock not found")
    return Response(dumps(clock_body(row)), media_type=JSON)


@router.post(
    "/{clock_id}/advance",
    response_model=ClockPublic,
    responses={**NOT_FOUND, **CONFLICT},
    summary="Move a test clock forward to `to`: status `advancing` until the overnight run has caught up",
)
async def advance_clock(clock_id: ClockIdPath, body: ClockAdvance, ctx: ContextDep) -> Response:
    assert ctx.principal is not None
    merchant_id = await _tenant(ctx, clock_id)
    if ctx.principal.store_id is not None:
        raise NotFound("test clock not found")  # devices read the clock; they do not move it
    current = await ctx.db.fetchrow(GET, clock_id, merchant_id)
    if current is None:
        raise NotFound("test clock not found")
    if body.to <= current["frozen_time"]:
        raise Unprocessable("a test clock only moves forward", code="advance_not_forward")
    if body.to - current["frozen_time"] > MAX_ADVANCE:
        raise Unprocessable("advance at most two years at a time", code="advance_too_far")
    if current["status"] != "ready":
        raise Conflict("the clock is still advancing (the overnight run is catching up)", code="test_clock_advancing")
    # In a certification run, the overnight run this advance causes is part of it (its events carry the run).
    row = await ctx.db.fetchrow(ADVANCE, clock_id, merchant_id, body.to, _real_now(ctx), certification_run.get())
    if row is None:  # advanced (or deleted) by someone else since it was read
        raise Conflict("the clock changed meanwhile: read it again", code="test_clock_advancing")
    return _reply(ctx, row)


@router.delete(
    "/{clock_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=NOT_FOUND,
    summary="Delete a test clock: the merchant's business time is real time again",
)
async def delete_clock(clock_id: ClockIdPath, ctx: ContextDep) -> Response:
    assert ctx.principal is not None
    merchant_id = await _tenant(ctx, clock_id)
    if ctx.principal.store_id is not None:
        raise NotFound("test clock not found")
    if await ctx.db.fetchrow(DELETE, clock_id, merchant_id) is None:
        raise NotFound("test clock not found")
    if ctx.services.test_clocks is not None:
        ctx.services.test_clocks.set(merchant_id, None)
    return Response(status_code=204)
