"""The report signing keys: published (`GET /.well-known/jwks.json`, no token: anyone verifies a report) and
rotated by admins (`POST /report-keys/rotate`; the retired key stays published)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from smartpos_shared.auth import AdminDep
from smartpos_shared.db import SessionDep, TransactionDep

from ..audit import log
from ..clock import now_of
from ..errors import COMMON_ERRORS
from .report import ReportKeys

router = APIRouter(tags=["certification"])


@router.get("/.well-known/jwks.json", summary="The keys that sign certification reports (retired ones included)")
async def jwks(session: SessionDep) -> dict[str, Any]:
    return await ReportKeys.jwks(session)


@router.post("/report-keys/rotate", responses=COMMON_ERRORS, summary="Sign new reports with a new key (admins)")
async def rotate(principal: AdminDep, transaction: TransactionDep, request: Request) -> dict[str, str]:
    now = now_of(request)
    kid = await request.app.state.report_keys.rotate(transaction.session, now)
    await log.append(transaction.session, principal, "report_key.rotated", kid, {}, now)
    return {"kid": kid}
