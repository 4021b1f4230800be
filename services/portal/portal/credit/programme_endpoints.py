"""HTTP for credit programmes (periodic allocations applied by the overnight run)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Request, status
from pydantic import BaseModel, Field, StringConstraints

from smartpos_shared.auth import PrincipalDep
from smartpos_shared.db import TransactionDep
from smartpos_shared.errors import NotFound
from smartpos_shared.schemas import RequestModel

from ..closeout.endpoints import now_of, store_tenant
from ..errors import COMMON_ERRORS, NOT_FOUND
from ..schemas import MAX_AMOUNT, ULID, Amount, Name, StoreId
from ..tenancy import tenant_for
from . import programmes

router = APIRouter(prefix="/credit-programmes", tags=["store credit"], responses=COMMON_ERRORS)


class ProgrammeCreate(RequestModel):
    store_id: StoreId = Field(description="the store whose overnight run applies it")
    name: Name
    allocation_amount: Amount
    period: Literal["daily", "weekly", "monthly"]
    carry_over_max: Annotated[int, Field(strict=True, ge=0, le=MAX_AMOUNT)] | None = Field(
        default=None, description="at a period's start, what an account holds above this expires (null: nothing)"
    )


class ProgrammePublic(BaseModel):
    id: str
    merchant_id: str
    store_id: str
    name: str
    allocation_amount: int
    period: str
    carry_over_max: int | None
    created_at: datetime


class EnrolmentCreate(RequestModel):
    account_id: Annotated[str, StringConstraints(pattern=rf"^cra_{ULID}$")]


class EnrolmentPublic(BaseModel):
    programme_id: str
    account_id: str


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    responses=NOT_FOUND,
    summary="Create a store's credit programme (merchant or admin)",
)
async def create_programme(
    body: ProgrammeCreate, principal: PrincipalDep, transaction: TransactionDep, request: Request
) -> ProgrammePublic:
    tenant = await store_tenant(principal, transaction.session, body.store_id)
    if tenant.store_id is not None:
        raise NotFound("store not found")  # a device never creates programmes
    created = await programmes.create_programme(
        transaction.session,
        tenant.merchant_id,
        body.store_id,
        body.name,
        body.allocation_amount,
        body.period,
        body.carry_over_max,
        now_of(request, tenant.merchant_id),
    )
    if created is None:
        raise NotFound("store not found")
    return ProgrammePublic.model_validate(created)


@router.post(
    "/{programme_id}/enrolments",
    status_code=status.HTTP_201_CREATED,
    responses=NOT_FOUND,
    summary="Enrol a credit account in the programme",
)
async def enrol(
    programme_id: Annotated[str, Path(pattern=rf"^crp_{ULID}$")],
    body: EnrolmentCreate,
    principal: PrincipalDep,
    transaction: TransactionDep,
    request: Request,
) -> EnrolmentPublic:
    session = transaction.session
    tenant = await tenant_for(principal, lambda: programmes.merchant_of(session, programme_id))
    if tenant.store_id is not None:
        raise NotFound("programme not found")  # devices never enrol accounts
    ok = await programmes.enrol(
        session, tenant.merchant_id, programme_id, body.account_id, now_of(request, tenant.merchant_id)
    )
    if not ok:
        raise NotFound("programme or account not found")
    return EnrolmentPublic(programme_id=programme_id, account_id=body.account_id)
