"""HTTP for shifts and Z reports (API.md v1.1 "Close of business")."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Annotated, Any, Literal

import httpx
from fastapi import APIRouter, Path, Query, Request, status

from smartpos_shared.auth import PrincipalDep
from smartpos_shared.db import SessionDep, TransactionDep
from smartpos_shared.errors import DomainError, NotFound, Unprocessable, problem_schema
from smartpos_shared.pagination import CursorQuery, LimitQuery, decode_cursor, encode_cursor

from ..context import services_of
from ..errors import COMMON_ERRORS, CONFLICT, NOT_FOUND
from ..merchants import repository as stores
from ..pgw.gateway import NoSettlementReport
from ..schemas import ULID
from ..tenancy import Tenant, tenant_for, tenant_for_list
from . import reconciliation, zreport
from . import shifts as shift_service
from .schemas import (
    CashMovementCreate,
    CashMovementPublic,
    CloseoutCreate,
    ReconciliationPublic,
    ShiftClose,
    ShiftOpen,
    ShiftPublic,
    ZReportPage,
    ZReportPublic,
)

router = APIRouter(tags=["close of business"], responses=COMMON_ERRORS)


class GatewayUnavailable(DomainError):
    status, code, title = 502, "gateway_unavailable", "Gateway unavailable"


ShiftIdPath = Annotated[str, Path(pattern=rf"^shf_{ULID}$")]
StoreIdPath = Annotated[str, Path(pattern=rf"^sto_{ULID}$")]


def now_of(request: Request, merchant_id: str) -> datetime:
    """Business time for the merchant (its test clock's, in the sandbox)."""
    return services_of(request).business_now(merchant_id)


async def store_tenant(principal: Any, session: Any, store_id: str) -> Tenant:
    """The tenant that may act on `store_id` (a device: only its own store; 404 otherwise)."""
    tenant = await tenant_for(principal, lambda: stores.merchant_of_store(session, store_id))
    if tenant.store_id is not None and tenant.store_id != store_id:
        raise NotFound("store not found")
    return tenant


@router.post(
    "/shifts",
    status_code=status.HTTP_201_CREATED,
    responses={**NOT_FOUND, **CONFLICT},
    summary="Open the store's cash drawer shift with its opening float (one open shift per store)",
)
async def open_shift(
    body: ShiftOpen, principal: PrincipalDep, transaction: TransactionDep, request: Request
) -> ShiftPublic:
    store_id = body.store_id or principal.store_id
    if store_id is None:
        raise Unprocessable("store_id is required", code="store_id_required")
    tenant = await store_tenant(principal, transaction.session, store_id)
    shift = await shift_service.open_shift(
        transaction, tenant, principal, store_id, body.opening_float, now_of(request, tenant.merchant_id)
    )
    return ShiftPublic.model_validate(shift)


@router.get(
    "/shifts/{shift_id}", responses=NOT_FOUND, summary="Get a shift (a device never sees an open one's expected cash)"
)
async def get_shift(shift_id: ShiftIdPath, principal: PrincipalDep, session: SessionDep) -> ShiftPublic:
    tenant = await tenant_for(principal, lambda: shift_service.resolve_merchant(session, shift_id))
    return ShiftPublic.model_validate(await shift_service.get_shift(session, tenant, principal, shift_id))


@router.get("/shifts", responses=NOT_FOUND, summary="List shifts, newest first")
async def list_shifts(
    principal: PrincipalDep,
    session: SessionDep,
    merchant_id: Annotated[str | None, Query(pattern=rf"^mer_{ULID}$")] = None,
    store_id: Annotated[str | None, Query(pattern=rf"^sto_{ULID}$")] = None,
    status: Literal["open", "closed"] | None = None,
    limit: LimitQuery = 50,
    cursor: CursorQuery = None,
) -> dict[str, Any]:
    tenant = tenant_for_list(principal, merchant_id)
    rows = await shift_service.list_shifts(session, tenant, store_id, status, decode_cursor(cursor, "shf"), limit)
    blind = shift_service.blind_for(principal)
    items = [ShiftPublic.model_validate(s.body(blind=blind)) for s in rows[:limit]]
    return {"items": items, "next_cursor": encode_cursor(items[-1].id) if len(rows) > limit and items else None}


@router.post(
    "/shifts/{shift_id}/cash-movements",
    status_code=status.HTTP_201_CREATED,
    responses={**NOT_FOUND, **CONFLICT},
    summary="Cash paid into or out of the drawer during an open shift",
)
async def add_cash_movement(
    shift_id: ShiftIdPath,
    body: CashMovementCreate,
    principal: PrincipalDep,
    transaction: TransactionDep,
    request: Request,
) -> CashMovementPublic:
    session = transaction.session
    tenant = await tenant_for(principal, lambda: shift_service.resolve_merchant(session, shift_id))
    movement = await shift_service.add_cash_movement(
        transaction, tenant, shift_id, body.kind, body.amount, body.note, now_of(request, tenant.merchant_id)
    )
    return CashMovementPublic.model_validate(movement)


@router.post(
    "/shifts/{shift_id}/close",
    responses={**NOT_FOUND, **CONFLICT},
    summary="Close a shift with the counted cash: expected, counted and the difference (blind for devices)",
)
async def close_shift(
    shift_id: ShiftIdPath, body: ShiftClose, principal: PrincipalDep, transaction: TransactionDep, request: Request
) -> ShiftPublic:
    session = transaction.session
    tenant = await tenant_for(principal, lambda: shift_service.resolve_merchant(session, shift_id))
    closed = await shift_service.close_shift(
        transaction, tenant, principal, shift_id, body.counted_cash, now_of(request, tenant.merchant_id)
    )
    return ShiftPublic.model_validate(closed)


@router.post(
    "/stores/{store_id}/closeouts",
    status_code=status.HTTP_201_CREATED,
    responses={**NOT_FOUND, **CONFLICT},
    summary="Close the store's next business day: a sealed, numbered, hash-chained Z report",
)
async def create_closeout(
    store_id: StoreIdPath,
    principal: PrincipalDep,
    transaction: TransactionDep,
    request: Request,
    body: CloseoutCreate | None = None,
) -> ZReportPublic:
    tenant = await store_tenant(principal, transaction.session, store_id)
    settings = services_of(request).settings
    sealed = await zreport.close_day(
        transaction.session,
        tenant.merchant_id,
        store_id,
        body.business_date if body else None,
        now_of(request, tenant.merchant_id),
        grace=timedelta(seconds=settings.closeout_grace_seconds),
    )
    zreport.emit_sealed(transaction, sealed.report)
    return ZReportPublic.model_validate(sealed.report)


@router.get(
    "/stores/{store_id}/closeouts",
    responses=NOT_FOUND,
    summary="The store's Z reports, newest first; ?verify=true checks the whole hash chain",
)
async def list_closeouts(
    store_id: StoreIdPath,
    principal: PrincipalDep,
    session: SessionDep,
    verify: bool = False,
    limit: LimitQuery = 50,
    cursor: CursorQuery = None,
) -> ZReportPage:
    tenant = await store_tenant(principal, session, store_id)
    if await stores.get_store(session, tenant, store_id) is None:
        raise NotFound("store not found")
    rows = await zreport.list_reports(session, tenant.merchant_id, store_id, decode_cursor(cursor, "zrp"), limit + 1)
    items = [ZReportPublic.model_validate(r) for r in rows[:limit]]
    verification = (await zreport.verify_store(session, tenant.merchant_id, store_id)).body() if verify else None
    return ZReportPage.model_validate(
        {
            "items": items,
            "next_cursor": encode_cursor(items[-1].id) if len(rows) > limit and items else None,
            "verification": verification,
        }
    )


@router.get("/stores/{store_id}/closeouts/{closeout_id}", responses=NOT_FOUND, summary="Get a Z report")
async def get_closeout(
    store_id: StoreIdPath,
    closeout_id: Annotated[str, Path(pattern=rf"^zrp_{ULID}$")],
    principal: PrincipalDep,
    session: SessionDep,
) -> ZReportPublic:
    tenant = await store_tenant(principal, session, store_id)
    report = await zreport.get_report(session, tenant.merchant_id, closeout_id)
    if report is None or report["store_id"] != store_id:
        raise NotFound("Z report not found")
    return ZReportPublic.model_validate(report)


@router.get(
    "/stores/{store_id}/reconciliations/{business_date}",
    responses={**NOT_FOUND, 502: problem_schema("The gateway's settlement report could not be read")},
    summary="A business day's card and qr money matched with the gateway's settlement report",
)
async def get_reconciliation(
    store_id: StoreIdPath, business_date: date, principal: PrincipalDep, session: SessionDep, request: Request
) -> ReconciliationPublic:
    """Sealed and reconciled by the overnight run: the stored result. Otherwise it is computed now (`stored`:
    false; for a day not sealed yet `sealed` is false too and the figures may still change)."""
    tenant = await store_tenant(principal, session, store_id)
    found = await reconciliation.stored(session, tenant.merchant_id, store_id, business_date)
    if found is not None:
        return ReconciliationPublic.model_validate({**found, "stored": True, "sealed": True})
    window = await zreport.window_of(session, tenant.merchant_id, store_id, business_date)
    if window is None:
        raise NotFound("store not found")
    start, end, sealed = window
    try:
        result = await reconciliation.reconcile(
            session, services_of(request).gateway, tenant.merchant_id, store_id, business_date, start, end
        )
    except (NoSettlementReport, httpx.HTTPError) as exc:
        raise GatewayUnavailable(f"the gateway's settlement report could not be read ({type(exc).__name__})") from None
    return ReconciliationPublic.model_validate({**result, "stored": False, "sealed": sealed})
