"""Certification runs: `POST /certification/runs` starts one for an integration and a checklist; the partner's
terminals then send `SmartPOS-Certification-Run: <id>` to the sandbox portal; `GET /certification/runs/{id}`
judges every case from the run's events as they arrive (pending until shown)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Request, status
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, Field, StringConstraints
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from smartpos_shared.auth import Principal, PrincipalDep, Role
from smartpos_shared.db import SessionDep, TransactionDep
from smartpos_shared.errors import Conflict, Forbidden, NotFound, problem_schema
from smartpos_shared.ids import new_id
from smartpos_shared.schemas import RequestModel

from ..audit import log
from ..clock import now_of
from ..errors import COMMON_ERRORS
from . import report as reports
from .checklist import CHECKLISTS, Event, judge

ULID = "[0-9A-HJKMNP-TV-Z]{26}"
router = APIRouter(prefix="/certification/runs", tags=["certification"], responses=COMMON_ERRORS)
RunIdPath = Annotated[str, Path(pattern=rf"^crt_{ULID}$")]
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: problem_schema("No such run or integration, or another partner's")}
COLUMNS = "id, integration_id, partner_id, checklist, status, created_at, completed_at, result, report, certified_at"


class RunCreate(RequestModel):
    integration_id: Annotated[str, StringConstraints(pattern=rf"^int_{ULID}$")]
    checklist: Literal["pos-core-v1", "pos-payments-v1"] = "pos-core-v1"


class CasePublic(BaseModel):
    id: str
    title: str
    status: Literal["pending", "passed", "failed"]
    evidence: list[str]
    detail: str


class ApprovalPublic(BaseModel):
    principal_id: str
    role: Literal["partner", "admin"]
    approved_at: datetime


class RunPublic(BaseModel):
    id: str
    integration_id: str
    partner_id: str
    checklist: str
    status: Literal["running", "completed"]
    created_at: datetime
    completed_at: datetime | None
    result: Literal["passed", "failed"] | None = Field(
        default=None, description="once completed: passed when every case passed"
    )
    report: str | None = Field(default=None, description="once completed: the signed report (compact JWS, ES256)")
    certified_at: datetime | None = Field(
        default=None, description="set once a partner and a platform admin (two principals) signed a passed run"
    )
    approvals: list[ApprovalPublic] = Field(default_factory=list)
    cases: list[CasePublic]


def _may_act(principal: Principal, partner_id: str) -> bool:
    return principal.role is Role.admin or (principal.role is Role.partner and principal.partner_id == partner_id)


async def _body(session: AsyncSession, run: dict[str, Any]) -> dict[str, Any]:
    rows = await session.execute(
        text(
            "SELECT event_id, type, subject, data FROM certification_evidence WHERE run_id = :run"
            " ORDER BY time, event_id"
        ),
        {"run": run["id"]},
    )
    events = [
        Event(r.event_id, r.type, r.subject, r.data if isinstance(r.data, dict) else json.loads(r.data)) for r in rows
    ]
    approvals = await session.execute(
        text(
            "SELECT principal_id, role, approved_at FROM certification_approvals WHERE run_id = :run"
            " ORDER BY approved_at, principal_id"
        ),
        {"run": run["id"]},
    )
    return {
        **run,
        "approvals": [dict(a._mapping) for a in approvals],
        "cases": judge(run["checklist"], events, final=run["status"] == "completed"),
    }


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=RunPublic,
    responses=NOT_FOUND,
    summary="Start a certification run of an integration (its partner, or an admin)",
)
async def start_run(body: RunCreate, principal: PrincipalDep, transaction: TransactionDep, request: Request) -> Any:
    if principal.role not in (Role.partner, Role.admin):
        raise Forbidden("certification is for partners and platform admins")
    session = transaction.session
    owner = (
        await session.execute(text("SELECT partner_id FROM integrations WHERE id = :id"), {"id": body.integration_id})
    ).scalar_one_or_none()
    if owner is None or not _may_act(principal, owner):
        raise NotFound("integration not found")
    now = now_of(request)
    run = {
        "id": new_id("crt"),
        "integration_id": body.integration_id,
        "partner_id": owner,
        "checklist": body.checklist,
        "status": "running",
        "created_at": now,
        "completed_at": None,
        "result": None,
        "report": None,
        "certified_at": None,
    }
    await session.execute(
        text(
            f"INSERT INTO certification_runs ({COLUMNS}) VALUES (:id, :integration_id, :partner_id, :checklist,"  # noqa: S608
            " :status, :created_at, :completed_at, :result, :report, :certified_at)"
        ),
        run,
    )
    await log.append(
        session, principal, "certification.started", run["id"],
        {"integration_id": body.integration_id, "checklist": body.checklist}, now,
    )  # fmt: skip
    return {**run, "cases": judge(body.checklist, [], final=False)}


async def _run(session: AsyncSession, principal: Principal, run_id: str, *, lock: bool = False) -> dict[str, Any]:
    lock_clause = " FOR UPDATE" if lock else ""
    row = (
        await session.execute(
            text(f"SELECT {COLUMNS} FROM certification_runs WHERE id = :id{lock_clause}"),  # noqa: S608 (constants)
            {"id": run_id},
        )
    ).one_or_none()
    if row is None or not _may_act(principal, row.partner_id):
        raise NotFound("certification run not found")
    return dict(row._mapping)


@router.get("/{run_id}", response_model=RunPublic, responses=NOT_FOUND, summary="A run and the verdict of each case")
async def get_run(run_id: RunIdPath, principal: PrincipalDep, session: SessionDep) -> Any:
    return await _body(session, await _run(session, principal, run_id))


@router.post(
    "/{run_id}/complete",
    response_model=RunPublic,
    responses={**NOT_FOUND, 409: problem_schema("The run is completed already")},
    summary="Complete a run: the final verdicts (pending becomes failed), signed as a report (JWS, ES256)",
)
async def complete_run(
    run_id: RunIdPath, principal: PrincipalDep, transaction: TransactionDep, request: Request
) -> Any:
    session = transaction.session
    run = await _run(session, principal, run_id, lock=True)
    if run["status"] != "running":
        raise Conflict("the run is completed already", code="run_completed")
    now = now_of(request)
    run.update(status="completed", completed_at=now)
    judged = await _body(session, run)
    result = "passed" if all(c["status"] == "passed" for c in judged["cases"]) else "failed"
    integration = (
        await session.execute(
            text("SELECT name, version FROM integrations WHERE id = :id"), {"id": run["integration_id"]}
        )
    ).one()
    content = {
        "run_id": run["id"],
        "integration_id": run["integration_id"],
        "integration_name": integration.name,
        "integration_version": integration.version,
        "partner_id": run["partner_id"],
        "checklist": run["checklist"],
        "result": result,
        "cases": judged["cases"],
        "started_at": run["created_at"].isoformat(),
        "completed_at": now.isoformat(),
        "iat": int(now.timestamp()),
    }
    kid, key = await request.app.state.report_keys.active(session, now)
    signed = reports.sign(content, kid, key)
    await session.execute(
        text(
            "UPDATE certification_runs SET status = 'completed', completed_at = :now, result = :result,"
            " report = :report WHERE id = :id"
        ),
        {"now": now, "result": result, "report": signed, "id": run_id},
    )
    await log.append(session, principal, "certification.completed", run_id, {"result": result, "kid": kid}, now)
    return {**judged, "result": result, "report": signed}


@router.get(
    "/{run_id}/report.html",
    response_class=HTMLResponse,
    responses={**NOT_FOUND, 409: problem_schema("The run is not completed yet")},
    summary="The signed report, for people: cases, verdicts, evidence and timings",
)
async def report_page(run_id: RunIdPath, principal: PrincipalDep, session: SessionDep) -> HTMLResponse:
    run = await _run(session, principal, run_id)
    if run["report"] is None:
        raise Conflict("the run is not completed yet", code="run_running")
    content = reports.verify(run["report"], await reports.ReportKeys.jwks(session))
    kid = reports.kid_of(run["report"])
    return HTMLResponse(reports.render_html({**content, "kid": kid}))


@router.post(
    "/{run_id}/approvals",
    response_model=RunPublic,
    responses={**NOT_FOUND, 409: problem_schema("Not a passed, completed run; or this principal signed already")},
    summary="Sign off a passed run (its partner, or a platform admin); certified once both have",
)
async def approve_run(run_id: RunIdPath, principal: PrincipalDep, transaction: TransactionDep, request: Request) -> Any:
    session = transaction.session
    run = await _run(session, principal, run_id, lock=True)  # the run's row lock: sign-offs one at a time
    if run["status"] != "completed" or run["result"] != "passed":
        raise Conflict("only a completed run whose every case passed is signed off", code="run_not_passed")
    now = now_of(request)
    inserted = await session.execute(
        text(
            "INSERT INTO certification_approvals (run_id, principal_id, role, approved_at)"
            " VALUES (:run, :principal, :role, :now) ON CONFLICT (run_id, principal_id) DO NOTHING RETURNING 1"
        ),
        {"run": run_id, "principal": principal.subject, "role": str(principal.role), "now": now},
    )
    if inserted.first() is None:
        raise Conflict("this principal signed this run already", code="already_approved")
    await log.append(session, principal, "certification.approved", run_id, {"role": str(principal.role)}, now)
    roles = {
        row.role
        for row in await session.execute(
            text("SELECT DISTINCT role FROM certification_approvals WHERE run_id = :run"), {"run": run_id}
        )
    }
    if run["certified_at"] is None and roles >= {"partner", "admin"}:
        # The report is signed again with the sign-offs: what production accepts for a rollout.
        content = reports.unverified_content(run["report"])
        approvals = await session.execute(
            text("SELECT principal_id, role FROM certification_approvals WHERE run_id = :run ORDER BY principal_id"),
            {"run": run_id},
        )
        content.update(
            certified_at=now.isoformat(),
            approvals=[{"principal_id": a.principal_id, "role": a.role} for a in approvals],
            iat=int(now.timestamp()),
        )
        kid, key = await request.app.state.report_keys.active(session, now)
        run.update(certified_at=now, report=reports.sign(content, kid, key))
        await session.execute(
            text("UPDATE certification_runs SET certified_at = :now, report = :report WHERE id = :run"),
            {"now": now, "report": run["report"], "run": run_id},
        )
        await log.append(session, principal, "certification.certified", run_id, {"kid": kid}, now)
    return await _body(session, run)


__all__ = ["CHECKLISTS", "router"]
