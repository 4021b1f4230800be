"""HTTP for merchant configuration and its change requests (portal/config/changes.py says how they work).

Reading a configuration: the merchant itself, or an admin naming it. Change requests are the operators' (admins).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request, status
from pydantic import AwareDatetime, BaseModel, Field

from smartpos_shared.auth import AdminDep, MerchantOrAdminDep
from smartpos_shared.db import SessionDep, TransactionDep
from smartpos_shared.errors import NotFound
from smartpos_shared.pagination import CursorQuery, LimitQuery, Page, decode_cursor, page_of
from smartpos_shared.schemas import RequestModel

from ..closeout.endpoints import now_of
from ..errors import COMMON_ERRORS, CONFLICT, NOT_FOUND
from ..schemas import ULID, MerchantId, MerchantQuery
from ..tenancy import tenant_for_list
from . import changes
from . import document as config

router = APIRouter(tags=["configuration"], responses=COMMON_ERRORS)
ChangeIdPath = Annotated[str, Path(pattern=rf"^chg_{ULID}$")]


class ConfigPublic(BaseModel):
    merchant_id: str
    version: int = Field(description="0 until a change request was applied")
    checksum: str = Field(description="SHA-256 over the document's canonical JSON")
    document: dict[str, Any]


class Bundle(RequestModel):
    """What `smartpos config export` writes: the document, and where it came from (kept, not checked)."""

    document: config.ConfigDocument
    exported_from: dict[str, Any] | None = None


class ChangeRequestCreate(RequestModel):
    merchant_id: MerchantId
    bundle: Bundle
    scheduled_at: AwareDatetime | Literal["off_peak"] | None = Field(
        default=None,
        description="when to apply once approved: a moment, `off_peak` (the stores' next PORTAL_CONFIG_OFF_PEAK_AT"
        " local time), or null: as soon as the last approval lands",
    )


class Approval(BaseModel):
    principal_id: str
    approved_at: datetime


class ChangeRequestPublic(BaseModel):
    id: str
    merchant_id: str
    author_id: str
    status: Literal["pending_approval", "approved", "applied", "failed", "reverted"]
    checksum: str = Field(description="of the proposed configuration")
    base_checksum: str = Field(description="of the live configuration the diff was made against")
    diff: list[dict[str, Any]] = Field(description='`{"path", "from", "to"}` per difference')
    approvals_required: int
    approvals: list[Approval]
    apply_at: datetime | None
    failure: dict[str, Any] | None = Field(description="why it failed: the paths that changed since the diff")
    created_at: datetime
    applied_at: datetime | None
    reverted_at: datetime | None
    version: int


@router.get("/config/schema", summary="The JSON Schema of a merchant configuration (smartpos-config/v1)")
async def config_schema(_: MerchantOrAdminDep) -> dict[str, Any]:
    return config.schema()


@router.get(
    "/config",
    response_model=ConfigPublic,
    responses=NOT_FOUND,
    summary="A merchant's live configuration (the merchant; an admin names it)",
)
async def get_config(principal: MerchantOrAdminDep, session: SessionDep, merchant_id: MerchantQuery = None) -> Any:
    tenant = tenant_for_list(principal, merchant_id)
    live = await config.load(session, tenant.merchant_id)
    if live is None:
        raise NotFound("merchant not found")
    document, version = live
    return {"merchant_id": tenant.merchant_id, "version": version, "checksum": config.checksum(document),
            "document": document}  # fmt: skip


@router.post(
    "/change-requests",
    status_code=status.HTTP_201_CREATED,
    response_model=ChangeRequestPublic,
    responses=NOT_FOUND,
    summary="Propose a configuration for a merchant: its diff against what is live, waiting for approvals (admins)",
)
async def create_change_request(
    body: ChangeRequestCreate, principal: AdminDep, transaction: TransactionDep, request: Request
) -> Any:
    session = transaction.session
    now = now_of(request, body.merchant_id)
    apply_at = body.scheduled_at
    if apply_at == "off_peak":
        apply_at = await changes.off_peak(session, body.merchant_id, request.app.state.settings.config_off_peak_at, now)
    row = await changes.propose(
        transaction,
        principal,
        body.merchant_id,
        body.bundle.document,
        apply_at if isinstance(apply_at, datetime) else None,
        request.app.state.settings.change_approvals,
        now,
    )
    return await changes.public(session, row)


async def _found(session: Any, change_id: str) -> dict[str, Any]:
    merchant_id = await changes.resolve(session, change_id)
    row = None if merchant_id is None else await changes.read(session, merchant_id, change_id)
    if row is None:
        raise NotFound("change request not found")
    return row


@router.get(
    "/change-requests",
    response_model=Page[ChangeRequestPublic],
    summary="Change requests, newest first: every merchant's (the reviewers' queue) or one's, of one status (admins)",
)
async def list_change_requests(
    _: AdminDep,
    session: SessionDep,
    merchant_id: MerchantQuery = None,
    status_filter: Annotated[
        Literal["pending_approval", "approved", "applied", "failed", "reverted"] | None, Query(alias="status")
    ] = None,
    limit: LimitQuery = 50,
    cursor: CursorQuery = None,
) -> Any:
    rows = await changes.listed(session, merchant_id, status_filter, decode_cursor(cursor, "chg"), limit)
    return page_of([ChangeRequestPublic.model_validate(await changes.public(session, row)) for row in rows], limit)


@router.get(
    "/change-requests/{change_id}", response_model=ChangeRequestPublic, responses=NOT_FOUND, summary="A change request"
)
async def get_change_request(change_id: ChangeIdPath, _: AdminDep, session: SessionDep) -> Any:
    return await changes.public(session, await _found(session, change_id))


@router.post(
    "/change-requests/{change_id}/approvals",
    response_model=ChangeRequestPublic,
    responses={**NOT_FOUND, **CONFLICT},
    summary="Approve a change request (an admin other than its author); the last approval applies an unscheduled one",
)
async def approve_change_request(
    change_id: ChangeIdPath, principal: AdminDep, transaction: TransactionDep, request: Request
) -> Any:
    found = await _found(transaction.session, change_id)
    row = await changes.approve(transaction, principal, change_id, now_of(request, found["merchant_id"]))
    return await changes.public(transaction.session, row)


@router.post(
    "/change-requests/{change_id}/revert",
    response_model=ChangeRequestPublic,
    responses={**NOT_FOUND, **CONFLICT},
    summary="Restore the configuration an applied change replaced, exactly (admins)",
)
async def revert_change_request(
    change_id: ChangeIdPath, principal: AdminDep, transaction: TransactionDep, request: Request
) -> Any:
    found = await _found(transaction.session, change_id)
    row = await changes.revert(transaction, principal, change_id, now_of(request, found["merchant_id"]))
    return await changes.public(transaction.session, row)
