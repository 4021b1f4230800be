from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request, status
from fastapi.responses import JSONResponse

from smartpos_shared.auth import PrincipalDep
from smartpos_shared.db import SessionDep

from ..errors import COMMON_ERRORS, CONFLICT, NOT_FOUND
from ..events import cache_of
from ..idempotency import IdempotencyKeyHeader, idempotent
from ..schemas import ULID
from . import service
from .schemas import BillCreate, BillPublic

router = APIRouter(prefix="/bills", tags=["bills"], responses=COMMON_ERRORS)


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=BillPublic,
    responses={**NOT_FOUND, **CONFLICT},
    summary="Bill an open order (one live bill per order)",
)
async def create_bill(
    request: Request,
    body: BillCreate,
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
        lambda: service.create_bill(session, cache_of(request), principal, body),
    )


@router.get("/{bill_id}", responses=NOT_FOUND, summary="Get a bill")
async def get_bill(
    bill_id: Annotated[str, Path(pattern=rf"^bil_{ULID}$")],
    request: Request,
    principal: PrincipalDep,
    session: SessionDep,
) -> BillPublic:
    return await service.get_bill(session, cache_of(request), principal, bill_id)
