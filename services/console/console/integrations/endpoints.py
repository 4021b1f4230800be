"""Integrations (`int_`): a partner's POS software at one version. Partners create and see their own; platform
admins see every partner's. Each creation is written to the audit log in the same transaction."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request, status
from pydantic import BaseModel, StringConstraints
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from smartpos_shared.auth import Principal, PrincipalDep, Role
from smartpos_shared.db import SessionDep, TransactionDep
from smartpos_shared.errors import Conflict, Forbidden, NotFound, Unprocessable, problem_schema
from smartpos_shared.ids import new_id
from smartpos_shared.pagination import CursorQuery, LimitQuery, Page, decode_cursor, page_of
from smartpos_shared.schemas import RequestModel

from ..audit import log
from ..clock import now_of
from ..errors import COMMON_ERRORS

ULID = "[0-9A-HJKMNP-TV-Z]{26}"
router = APIRouter(prefix="/integrations", tags=["integrations"], responses=COMMON_ERRORS)
IntegrationIdPath = Annotated[str, Path(pattern=rf"^int_{ULID}$")]
NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: problem_schema("No such integration, or another partner's (never revealed)")
}


class IntegrationCreate(RequestModel):
    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=120)]
    version: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=40)]
    partner_id: Annotated[str, StringConstraints(pattern=rf"^cli_{ULID}$")] | None = None  # admins name the partner


class IntegrationPublic(BaseModel):
    id: str
    partner_id: str
    name: str
    version: str
    created_at: datetime


COLUMNS = "id, partner_id, name, version, created_at"


def _partner_of(principal: Principal, requested: str | None) -> str:
    """The partner an operation acts for: a partner itself; an admin names one."""
    if principal.role is Role.partner:
        if requested is not None and requested != principal.partner_id:
            raise NotFound("partner not found")
        return str(principal.partner_id)
    if principal.role is Role.admin:
        if requested is None:
            raise Unprocessable("an admin names the partner (partner_id)", code="partner_id_required")
        return requested
    raise Forbidden("integrations are for partners and platform admins")


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=IntegrationPublic,
    responses={
        404: problem_schema("A partner naming another partner (partner_id): never revealed"),
        409: problem_schema("The partner already has this name at this version"),
    },
    summary="Register an integration (a partner's POS software at one version)",
)
async def create_integration(
    body: IntegrationCreate, principal: PrincipalDep, transaction: TransactionDep, request: Request
) -> dict[str, Any]:
    partner_id = _partner_of(principal, body.partner_id)
    now = now_of(request)
    integration_id = new_id("int")
    row: dict[str, Any] = {
        "id": integration_id, "partner_id": partner_id, "name": body.name, "version": body.version, "created_at": now,
    }  # fmt: skip
    session = transaction.session
    try:
        async with session.begin_nested():
            await session.execute(
                text(
                    "INSERT INTO integrations (id, partner_id, name, version, created_at)"
                    " VALUES (:id, :partner_id, :name, :version, :created_at)"
                ),
                row,
            )
    except IntegrityError:
        raise Conflict("this integration (name and version) exists already", code="integration_exists") from None
    await log.append(
        session, principal, "integration.created", integration_id, {"name": body.name, "version": body.version,
                                                               "partner_id": partner_id}, now
    )  # fmt: skip
    return row


@router.get("/{integration_id}", response_model=IntegrationPublic, responses=NOT_FOUND, summary="Get an integration")
async def get_integration(integration_id: IntegrationIdPath, principal: PrincipalDep, session: SessionDep) -> Any:
    if principal.role not in (Role.partner, Role.admin):
        raise Forbidden("integrations are for partners and platform admins")
    row = (
        await session.execute(
            text(f"SELECT {COLUMNS} FROM integrations WHERE id = :id"),  # noqa: S608 (constants only)
            {"id": integration_id},
        )
    ).one_or_none()
    if row is None or (principal.role is Role.partner and row.partner_id != principal.partner_id):
        raise NotFound("integration not found")
    return dict(row._mapping)


@router.get(
    "",
    response_model=Page[IntegrationPublic],
    responses={404: problem_schema("A partner naming another partner (partner_id): never revealed")},
    summary="List integrations, newest first",
)
async def list_integrations(
    principal: PrincipalDep,
    session: SessionDep,
    partner_id: Annotated[str | None, Query(pattern=rf"^cli_{ULID}$")] = None,
    limit: LimitQuery = 50,
    cursor: CursorQuery = None,
) -> Page[IntegrationPublic]:
    every = principal.role is Role.admin and partner_id is None  # an admin's view of every partner
    partner = None if every else _partner_of(principal, partner_id)
    before = decode_cursor(cursor, "int")
    rows = await session.execute(
        text(
            f"SELECT {COLUMNS} FROM integrations"  # noqa: S608 (constants only)
            " WHERE (CAST(:partner AS text) IS NULL OR partner_id = :partner)"
            " AND (CAST(:before AS text) IS NULL OR id < :before) ORDER BY id DESC LIMIT :limit"
        ),
        {"partner": partner, "before": before, "limit": limit + 1},
    )
    return page_of([IntegrationPublic.model_validate(dict(r._mapping)) for r in rows], limit)
