from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request, status

from smartpos_shared.auth import AdminDep, PrincipalDep
from smartpos_shared.db import SessionDep, TransactionDep
from smartpos_shared.pagination import CursorQuery, LimitQuery, Page, decode_cursor, page_of

from ..context import services_of
from ..errors import COMMON_ERRORS, NOT_FOUND
from ..schemas import ULID, MerchantQuery
from . import service
from .schemas import MerchantCreate, MerchantPublic, OfflineLimitsUpdate, StoreCreate, StorePublic, StoreUpdate

router = APIRouter(tags=["merchants and stores"], responses=COMMON_ERRORS)


@router.post("/merchants", status_code=status.HTTP_201_CREATED, summary="Create a merchant (admin)")
async def create_merchant(body: MerchantCreate, _: AdminDep, session: SessionDep) -> MerchantPublic:
    return await service.create_merchant(session, body)


@router.get("/merchants/{merchant_id}", responses=NOT_FOUND, summary="Get a merchant (admin, or the merchant itself)")
async def get_merchant(
    merchant_id: Annotated[str, Path(pattern=rf"^mer_{ULID}$")], principal: PrincipalDep, session: SessionDep
) -> MerchantPublic:
    return await service.get_merchant(session, principal, merchant_id)


@router.patch(
    "/merchants/{merchant_id}",
    responses=NOT_FOUND,
    summary="Set the merchant's offline limits (admin, or the merchant itself; enforced at POST /sync)",
)
async def update_merchant(
    merchant_id: Annotated[str, Path(pattern=rf"^mer_{ULID}$")],
    body: OfflineLimitsUpdate,
    principal: PrincipalDep,
    session: SessionDep,
) -> MerchantPublic:
    return await service.update_offline_limits(session, principal, merchant_id, body)


@router.post(
    "/stores",
    status_code=status.HTTP_201_CREATED,
    responses=NOT_FOUND,
    summary="Create a store (admin with merchant_id; a merchant for itself)",
)
async def create_store(
    body: StoreCreate, principal: PrincipalDep, transaction: TransactionDep, request: Request
) -> StorePublic:
    return await service.create_store(transaction, principal, body, services_of(request).business_now)


@router.get("/stores/{store_id}", responses=NOT_FOUND, summary="Get a store")
async def get_store(
    store_id: Annotated[str, Path(pattern=rf"^sto_{ULID}$")], principal: PrincipalDep, session: SessionDep
) -> StorePublic:
    return await service.get_store(session, principal, store_id)


@router.patch(
    "/stores/{store_id}",
    responses=NOT_FOUND,
    summary="Rename a store or set its timezone and closing time (admin, or the merchant)",
)
async def update_store(
    store_id: Annotated[str, Path(pattern=rf"^sto_{ULID}$")],
    body: StoreUpdate,
    principal: PrincipalDep,
    transaction: TransactionDep,
) -> StorePublic:
    return await service.update_store(transaction, principal, store_id, body)


@router.get("/stores", responses=NOT_FOUND, summary="List stores, newest first (an admin names the merchant)")
async def list_stores(
    principal: PrincipalDep,
    session: SessionDep,
    merchant_id: MerchantQuery = None,
    limit: LimitQuery = 50,
    cursor: CursorQuery = None,
) -> Page[StorePublic]:
    rows = await service.list_stores(session, principal, merchant_id, decode_cursor(cursor, "sto"), limit)
    return page_of(rows, limit)
