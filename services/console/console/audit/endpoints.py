"""`GET /audit`: the audit log, oldest first (platform admins)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel

from smartpos_shared.auth import AdminDep
from smartpos_shared.db import SessionDep

from ..errors import COMMON_ERRORS
from . import log

router = APIRouter(tags=["audit"], responses=COMMON_ERRORS)


class AuditEntryPublic(BaseModel):
    seq: int
    at: str
    actor_role: str
    actor_id: str
    action: str
    subject: str
    detail: dict[str, Any]
    previous_hash: str
    hash: str


class AuditVerification(BaseModel):
    intact: bool
    entries: int
    broken_at: int | None
    problem: str | None


class AuditPage(BaseModel):
    items: list[AuditEntryPublic]
    next_after: int | None
    verification: AuditVerification | None = None


@router.get("/audit", response_model=AuditPage, summary="The audit log, oldest first (`?verify=true` checks the chain)")
async def list_audit(
    _: AdminDep,
    session: SessionDep,
    after: Annotated[int, Query(ge=0, le=2**62, description="entries after this seq")] = 0,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    verify: bool = False,
) -> dict[str, Any]:
    items = await log.page(session, after, limit + 1)
    body: dict[str, Any] = {
        "items": items[:limit],
        "next_after": items[limit - 1]["seq"] if len(items) > limit else None,
    }
    if verify:
        body["verification"] = (await log.verify(session)).body()
    return body
