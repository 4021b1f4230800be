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
from .schemas import PaymentCreate, PaymentPublic

router = APIRouter(prefix="/payments", tags=["payments"], responses=COMMON_ERRORS)


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=PaymentPublic,
    responses={**NOT_FOUND, **CONFLICT},
    summary="Take a payment on a bill: cash succeeds at once; card and qr are pending until the gateway confirms",
)
async def create_payment(
    request: Request,
    body: PaymentCreate,
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
        lambda: service.create_payment(session, cache_of(request), request.app.state.gateway, principal, body),
    )


@router.get("/{payment_id}", responses=NOT_FOUND, summary="Get a payment")
async def get_payment(
    payment_id: Annotated[str, Path(pattern=rf"^pay_{ULID}$")], principal: PrincipalDep, session: SessionDep
) -> PaymentPublic:
    return await service.get_payment(session, principal, payment_id)
