"""HTTP for store credit accounts and their ledger."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import asyncpg
from fastapi import APIRouter, Path, Query, Request, status
from fastapi.responses import Response
from pydantic import BaseModel, Field, StringConstraints, model_validator

from smartpos_shared.auth import Role
from smartpos_shared.errors import Conflict, Forbidden, NotFound
from smartpos_shared.ids import new_id
from smartpos_shared.pagination import CursorQuery, LimitQuery, decode_cursor, encode_cursor
from smartpos_shared.schemas import RequestModel

from ..checkout.model import dumps
from ..context import ContextDep, RequestContext
from ..errors import COMMON_ERRORS, CONFLICT, NOT_FOUND
from ..idempotency import Reply, RequiredIdempotencyKeyHeader, idempotent
from ..schemas import MAX_AMOUNT, ULID, MerchantId
from ..tenancy import merchant_for_write, tenant_for, tenant_for_list
from . import ledger

router = APIRouter(prefix="/credit-accounts", tags=["store credit"], responses=COMMON_ERRORS)
AccountIdPath = Annotated[str, Path(pattern=rf"^cra_{ULID}$")]
JSON = "application/json"


class AccountCreate(RequestModel):
    merchant_id: MerchantId | None = None
    customer_ref: Annotated[str, StringConstraints(min_length=1, max_length=128)] | None = Field(
        default=None, description="the merchant's own id for the customer (unique per merchant)"
    )


class AccountPublic(BaseModel):
    id: str
    merchant_id: str
    customer_ref: str | None
    currency: str
    balance: int
    version: int
    created_at: datetime
    updated_at: datetime


class EntryCreate(RequestModel):
    """`load`: money in (positive); `adjust`: a correction either way (signed, never below zero)."""

    kind: Literal["load", "adjust"]
    amount: Annotated[int, Field(strict=True, ge=-MAX_AMOUNT, le=MAX_AMOUNT)]
    note: Annotated[str, StringConstraints(max_length=500)] | None = None

    @model_validator(mode="after")
    def _sign(self) -> EntryCreate:
        if self.amount == 0 or (self.kind == "load" and self.amount < 0):
            raise ValueError("a load is positive; an adjustment is not zero")
        return self


class EntryPublic(BaseModel):
    id: str
    account_id: str
    kind: Literal["load", "redeem", "refund", "expire", "allocate", "transfer", "adjust"]
    amount: int = Field(description="signed: credits positive, debits negative")
    balance_after: int
    payment_id: str | None
    refund_id: str | None
    note: str | None
    created_at: datetime


class EntryPage(BaseModel):
    items: list[EntryPublic]
    next_cursor: str | None


RESOLVE = "SELECT merchant_id FROM credit_accounts WHERE id = $1 /* tenant-resolution */"
INSERT = """
INSERT INTO credit_accounts (id, merchant_id, customer_ref, currency, balance, version, created_at, updated_at)
SELECT $1, m.id, $3, m.currency, 0, 1, $4, $4 FROM merchants m WHERE m.id = $2
RETURNING id, merchant_id, customer_ref, currency, balance, version, created_at, updated_at"""
ENTRIES = """
SELECT id, account_id, kind, amount, balance_after, payment_id, refund_id, note, created_at FROM credit_entries
WHERE merchant_id = $1 AND account_id = $2 AND ($3::text IS NULL OR id < $3) ORDER BY id DESC LIMIT $4"""


def _principal(ctx: RequestContext) -> Any:
    assert ctx.principal is not None
    return ctx.principal


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=AccountPublic,
    responses={**NOT_FOUND, **CONFLICT},
    summary="Open a credit account (merchant; admin names the merchant), in the merchant's currency",
)
async def create_account(body: AccountCreate, ctx: ContextDep) -> Response:
    merchant_id = merchant_for_write(_principal(ctx), body.merchant_id)
    try:
        row = await ctx.db.fetchrow(INSERT, new_id("cra"), merchant_id, body.customer_ref, ctx.now(merchant_id))
    except asyncpg.UniqueViolationError:
        raise Conflict("another account has this customer_ref", code="customer_ref_taken") from None
    if row is None:
        raise NotFound("merchant not found")
    return Response(dumps(ledger.account_body(row)), status_code=201, media_type=JSON)


@router.get("/{account_id}", response_model=AccountPublic, responses=NOT_FOUND, summary="Get a credit account")
async def get_account(account_id: AccountIdPath, ctx: ContextDep) -> Response:
    tenant = await tenant_for(_principal(ctx), lambda: ctx.db.fetchval(RESOLVE, account_id))
    row = await ctx.db.fetchrow(ledger.ACCOUNT, account_id, tenant.merchant_id)
    if row is None:
        raise NotFound("credit account not found")
    return Response(dumps(ledger.account_body(row)), media_type=JSON)


@router.get(
    "/{account_id}/entries", response_model=EntryPage, responses=NOT_FOUND, summary="The account's ledger, newest first"
)
async def list_entries(
    account_id: AccountIdPath,
    ctx: ContextDep,
    merchant_id: Annotated[str | None, Query(pattern=rf"^mer_{ULID}$")] = None,
    limit: LimitQuery = 50,
    cursor: CursorQuery = None,
) -> Response:
    principal = _principal(ctx)
    tenant = (
        tenant_for_list(principal, merchant_id)
        if merchant_id
        else await tenant_for(principal, lambda: ctx.db.fetchval(RESOLVE, account_id))
    )
    if await ctx.db.fetchrow(ledger.ACCOUNT, account_id, tenant.merchant_id) is None:
        raise NotFound("credit account not found")
    rows = await ctx.db.fetch(ENTRIES, tenant.merchant_id, account_id, decode_cursor(cursor, "cre"), limit + 1)
    items = [ledger.entry_body(r) for r in rows[:limit]]
    next_cursor = encode_cursor(items[-1]["id"]) if len(rows) > limit and items else None
    return Response(dumps({"items": items, "next_cursor": next_cursor}), media_type=JSON)


@router.post(
    "/{account_id}/entries",
    status_code=status.HTTP_201_CREATED,
    response_model=EntryPublic,
    responses={**NOT_FOUND, **CONFLICT},
    summary="Load credit or adjust it (merchant or admin; never below zero). Idempotency-Key required",
)
async def create_entry(
    account_id: AccountIdPath,
    body: EntryCreate,
    ctx: ContextDep,
    request: Request,
    idempotency_key: RequiredIdempotencyKeyHeader,
) -> Response:
    principal = _principal(ctx)
    if principal.role is Role.device:
        raise Forbidden("devices redeem credit by paying with it; loads and adjustments are the merchant's")
    tenant = await tenant_for(principal, lambda: ctx.db.fetchval(RESOLVE, account_id))

    async def use_case(_: object) -> Reply:
        entry = await ledger.apply(
            ctx.db,
            tenant.merchant_id,
            account_id,
            ledger.Entry(body.kind, body.amount, note=body.note),
            ctx.now(tenant.merchant_id),
        )
        return Reply(201, dumps({**entry, "merchant_id": tenant.merchant_id}), recorded=False)

    return await idempotent(ctx, request, idempotency_key, body, use_case)
