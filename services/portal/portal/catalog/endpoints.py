from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, status

from smartpos_shared.auth import PrincipalDep
from smartpos_shared.db import SessionDep
from smartpos_shared.pagination import CursorQuery, LimitQuery, Page, decode_cursor, page_of

from ..errors import COMMON_ERRORS, CONFLICT, NOT_FOUND
from ..schemas import ULID, MerchantQuery
from . import service
from .schemas import ProductCreate, ProductPublic

router = APIRouter(prefix="/products", tags=["catalog"], responses=COMMON_ERRORS)


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    responses={**NOT_FOUND, **CONFLICT},
    summary="Add a product to the catalog (merchant; admin with merchant_id). Priced in the merchant's currency.",
)
async def create_product(body: ProductCreate, principal: PrincipalDep, session: SessionDep) -> ProductPublic:
    return await service.create_product(session, principal, body)


@router.get("/{product_id}", responses=NOT_FOUND, summary="Get a product")
async def get_product(
    product_id: Annotated[str, Path(pattern=rf"^prd_{ULID}$")], principal: PrincipalDep, session: SessionDep
) -> ProductPublic:
    return await service.get_product(session, principal, product_id)


@router.get(
    "",
    responses=NOT_FOUND,
    summary="List the catalog, newest first (devices see their merchant's catalog; an admin names the merchant)",
)
async def list_products(
    principal: PrincipalDep,
    session: SessionDep,
    merchant_id: MerchantQuery = None,
    limit: LimitQuery = 50,
    cursor: CursorQuery = None,
) -> Page[ProductPublic]:
    rows = await service.list_products(session, principal, merchant_id, decode_cursor(cursor, "prd"), limit)
    return page_of(rows, limit)
