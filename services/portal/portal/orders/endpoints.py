from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, Request, status
from fastapi.responses import JSONResponse

from smartpos_shared.auth import PrincipalDep
from smartpos_shared.db import SessionDep
from smartpos_shared.pagination import CursorQuery, LimitQuery, Page, decode_cursor, page_of

from ..errors import COMMON_ERRORS, CONFLICT, NOT_FOUND
from ..events import cache_of
from ..idempotency import IdempotencyKeyHeader, idempotent
from ..schemas import ULID
from . import service
from .schemas import OrderCreate, OrderPublic, OrderStatusUpdate

router = APIRouter(prefix="/orders", tags=["orders"], responses=COMMON_ERRORS)
OrderIdPath = Annotated[str, Path(pattern=rf"^ord_{ULID}$")]


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=OrderPublic,
    responses={**NOT_FOUND, **CONFLICT},
    summary="Ring up an order (device: its store; merchant: any of its stores), priced from the catalog",
)
async def create_order(
    request: Request,
    body: OrderCreate,
    principal: PrincipalDep,
    session: SessionDep,
    idempotency_key: IdempotencyKeyHeader = None,
) -> JSONResponse:
    return await idempotent(
        request,
        session,
        principal,
        idempotency_key,
        body,
        lambda: service.create_order(session, cache_of(request), principal, body),
    )


@router.get("/{order_id}", responses=NOT_FOUND, summary="Get an order (served from the cache when possible)")
async def get_order(
    order_id: OrderIdPath, request: Request, principal: PrincipalDep, session: SessionDep
) -> OrderPublic:
    return await service.get_order(session, cache_of(request), principal, order_id)


@router.get("", summary="List orders, newest first")
async def list_orders(
    principal: PrincipalDep,
    session: SessionDep,
    store_id: Annotated[str | None, Query(pattern=rf"^sto_{ULID}$")] = None,
    status_filter: Annotated[Literal["open", "completed", "canceled"] | None, Query(alias="status")] = None,
    limit: LimitQuery = 50,
    cursor: CursorQuery = None,
) -> Page[OrderPublic]:
    rows = await service.list_orders(session, principal, store_id, status_filter, decode_cursor(cursor, "ord"), limit)
    return page_of(rows, limit)


@router.patch(
    "/{order_id}",
    responses={**NOT_FOUND, **CONFLICT},
    summary="Complete or cancel an open order (terminal states never change: 409)",
)
async def update_order(
    order_id: OrderIdPath, body: OrderStatusUpdate, request: Request, principal: PrincipalDep, session: SessionDep
) -> OrderPublic:
    return await service.update_status(session, cache_of(request), principal, order_id, body.status)
