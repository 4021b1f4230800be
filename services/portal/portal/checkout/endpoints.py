"""HTTP for orders, bills and payments: parse, call the use case, answer with the representation it built."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, status
from fastapi.responses import Response

from smartpos_shared.pagination import CursorQuery, LimitQuery, Page, decode_cursor, encode_cursor

from ..context import ContextDep
from ..errors import COMMON_ERRORS, CONFLICT, NOT_FOUND
from ..idempotency import IdempotencyKeyHeader, RequiredIdempotencyKeyHeader, idempotent
from ..schemas import ULID
from . import offline, service
from .model import dumps
from .schemas import (
    BillCreate,
    BillPublic,
    OrderCreate,
    OrderPublic,
    OrderStatusUpdate,
    PaymentCreate,
    PaymentPublic,
    RefundCreate,
    RefundPublic,
    SyncRequest,
    SyncResponse,
)
from .states import OrderStatus, PaymentStatus

orders = APIRouter(prefix="/orders", tags=["orders"], responses=COMMON_ERRORS)
bills = APIRouter(prefix="/bills", tags=["bills"], responses=COMMON_ERRORS)
payments = APIRouter(prefix="/payments", tags=["payments"], responses=COMMON_ERRORS)
refunds = APIRouter(prefix="/refunds", tags=["refunds"], responses=COMMON_ERRORS)
sync = APIRouter(tags=["offline"], responses=COMMON_ERRORS)

OrderIdPath = Annotated[str, Path(pattern=rf"^ord_{ULID}$")]
PaymentIdPath = Annotated[str, Path(pattern=rf"^pay_{ULID}$")]
MerchantQuery = Annotated[str | None, Query(pattern=rf"^mer_{ULID}$", description="admins: whose resources")]
JSON = "application/json"


def _json(body: bytes, status_code: int = 200) -> Response:
    return Response(body, status_code=status_code, media_type=JSON)


@orders.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=OrderPublic,
    responses={
        200: {"model": OrderPublic, "description": "the client_order_id names this existing order (same content)"},
        **NOT_FOUND,
        **CONFLICT,
    },
    summary="Ring up an order (device: its store; merchant: any of its stores), priced from the catalog",
)
async def create_order(
    request: Request, body: OrderCreate, ctx: ContextDep, idempotency_key: IdempotencyKeyHeader = None
) -> Response:
    return await idempotent(ctx, request, idempotency_key, body, lambda claim: service.create_order(ctx, body, claim))


@orders.get(
    "/{order_id}",
    response_model=OrderPublic,
    responses=NOT_FOUND,
    summary="Get an order (served from the cache when possible)",
)
async def get_order(order_id: OrderIdPath, ctx: ContextDep) -> Response:
    return _json(await service.get_order(ctx, order_id))


@orders.get(
    "",
    response_model=Page[OrderPublic],
    responses=NOT_FOUND,
    summary="List orders, newest first (an admin names the merchant)",
)
async def list_orders(
    ctx: ContextDep,
    merchant_id: Annotated[str | None, Query(pattern=rf"^mer_{ULID}$", description="admins: whose orders")] = None,
    store_id: Annotated[str | None, Query(pattern=rf"^sto_{ULID}$")] = None,
    status_filter: Annotated[OrderStatus | None, Query(alias="status")] = None,
    limit: LimitQuery = 50,
    cursor: CursorQuery = None,
) -> Response:
    rows = await service.list_orders(ctx, merchant_id, store_id, status_filter, decode_cursor(cursor, "ord"), limit)
    items = rows[:limit]
    next_cursor = encode_cursor(items[-1]["id"]) if len(rows) > limit and items else None
    return _json(dumps({"items": items, "next_cursor": next_cursor}))


@orders.patch(
    "/{order_id}",
    response_model=OrderPublic,
    responses={**NOT_FOUND, **CONFLICT},
    summary="Complete or cancel an open order (terminal states never change: 409)",
)
async def update_order(order_id: OrderIdPath, body: OrderStatusUpdate, ctx: ContextDep) -> Response:
    return _json(await service.update_order_status(ctx, order_id, body.status))


@bills.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=BillPublic,
    responses={**NOT_FOUND, **CONFLICT},
    summary="Bill an open order (one live bill per order)",
)
async def create_bill(
    request: Request, body: BillCreate, ctx: ContextDep, idempotency_key: IdempotencyKeyHeader = None
) -> Response:
    return await idempotent(ctx, request, idempotency_key, body, lambda claim: service.create_bill(ctx, body, claim))


@bills.get("/{bill_id}", response_model=BillPublic, responses=NOT_FOUND, summary="Get a bill")
async def get_bill(bill_id: Annotated[str, Path(pattern=rf"^bil_{ULID}$")], ctx: ContextDep) -> Response:
    return _json(await service.get_bill(ctx, bill_id))


@payments.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=PaymentPublic,
    responses={
        200: {"model": PaymentPublic, "description": "the client_payment_id names this existing payment"},
        **NOT_FOUND,
        **CONFLICT,
    },
    summary="Take a payment on a bill: cash succeeds at once; card and qr are pending until the gateway confirms",
)
async def create_payment(
    request: Request, body: PaymentCreate, ctx: ContextDep, idempotency_key: IdempotencyKeyHeader = None
) -> Response:
    return await idempotent(ctx, request, idempotency_key, body, lambda claim: service.create_payment(ctx, body, claim))


def _page(rows: list[dict[str, object]], limit: int) -> Response:
    items = rows[:limit]
    next_cursor = encode_cursor(str(items[-1]["id"])) if len(rows) > limit and items else None
    return _json(dumps({"items": items, "next_cursor": next_cursor}))


@payments.get(
    "", response_model=Page[PaymentPublic], responses=NOT_FOUND, summary="List payments, newest first (by bill, status)"
)
async def list_payments(
    ctx: ContextDep,
    merchant_id: MerchantQuery = None,
    bill_id: Annotated[str | None, Query(pattern=rf"^bil_{ULID}$")] = None,
    status_filter: Annotated[PaymentStatus | None, Query(alias="status")] = None,
    limit: LimitQuery = 50,
    cursor: CursorQuery = None,
) -> Response:
    rows = await service.list_payments(ctx, merchant_id, bill_id, status_filter, decode_cursor(cursor, "pay"), limit)
    return _page(rows, limit)


@payments.get("/{payment_id}", response_model=PaymentPublic, responses=NOT_FOUND, summary="Get a payment")
async def get_payment(payment_id: PaymentIdPath, ctx: ContextDep) -> Response:
    return _json(await service.get_payment(ctx, payment_id))


@payments.post(
    "/{payment_id}/void",
    response_model=PaymentPublic,
    responses={**NOT_FOUND, **CONFLICT},
    summary="Void a pending payment before the gateway confirms it (the gateway is told); any other status: 409",
)
async def void_payment(payment_id: PaymentIdPath, ctx: ContextDep) -> Response:
    return _json(await service.void_payment(ctx, payment_id))


@refunds.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=RefundPublic,
    responses={**NOT_FOUND, **CONFLICT},
    summary="Refund part or all of a succeeded payment to the same tender: cash at once, card and qr through "
    "the gateway (pending until its webhook). Idempotency-Key required: a retried refund must never pay twice",
)
async def create_refund(
    request: Request, body: RefundCreate, ctx: ContextDep, idempotency_key: RequiredIdempotencyKeyHeader
) -> Response:
    return await idempotent(ctx, request, idempotency_key, body, lambda claim: service.create_refund(ctx, body, claim))


@refunds.get(
    "", response_model=Page[RefundPublic], responses=NOT_FOUND, summary="List refunds, newest first (by payment)"
)
async def list_refunds(
    ctx: ContextDep,
    merchant_id: MerchantQuery = None,
    payment_id: Annotated[str | None, Query(pattern=rf"^pay_{ULID}$")] = None,
    limit: LimitQuery = 50,
    cursor: CursorQuery = None,
) -> Response:
    return _page(await service.list_refunds(ctx, merchant_id, payment_id, decode_cursor(cursor, "ref"), limit), limit)


@refunds.get("/{refund_id}", response_model=RefundPublic, responses=NOT_FOUND, summary="Get a refund")
async def get_refund(refund_id: Annotated[str, Path(pattern=rf"^ref_{ULID}$")], ctx: ContextDep) -> Response:
    return _json(await service.get_refund(ctx, refund_id))


@sync.post(
    "/sync",
    response_model=SyncResponse,
    summary="Forward what a terminal took offline: each order (with its bill and payments) is its own "
    "transaction; results per entry: created, duplicate or rejected with the reason",
)
async def sync_offline(body: SyncRequest, ctx: ContextDep) -> Response:
    return _json(dumps(await offline.sync(ctx, body)))
