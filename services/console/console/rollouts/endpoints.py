"""Rollouts (production go-live): an integration is enabled for one organisation first (a pilot of `pilot_days`),
then promoted to every merchant, or rolled back at once. Platform admins decide; the integration's partner may
read. Each change is one transaction: the row (guarded by its version), its `rollout.*` event on the outbox
(device-auth enforces it from there) and its audit entry.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

import jwt
from fastapi import APIRouter, Path, Request, status
from pydantic import BaseModel, Field, StringConstraints
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from smartpos_shared.auth import AdminDep, Principal, PrincipalDep, Role
from smartpos_shared.db import SessionDep, Transaction, TransactionDep
from smartpos_shared.errors import Conflict, NotFound, Unprocessable, problem_schema
from smartpos_shared.events import add_event
from smartpos_shared.ids import new_id
from smartpos_shared.schemas import RequestModel
from smartpos_shared.settings import Environment

from ..audit import log
from ..certification.report import verify as verify_report
from ..clock import now_of
from ..errors import COMMON_ERRORS
from ..models import OutboxEvent
from ..settings import ConsoleSettings
from .health import health as pilot_health

ULID = "[0-9A-HJKMNP-TV-Z]{26}"
router = APIRouter(prefix="/rollouts", tags=["rollouts"], responses=COMMON_ERRORS)
RolloutIdPath = Annotated[str, Path(pattern=rf"^rol_{ULID}$")]
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: problem_schema("No such rollout")}
CONFLICT: dict[int | str, dict[str, Any]] = {409: problem_schema("The rollout is not in a state that allows this")}
COLUMNS = (
    "id, integration_id, merchant_id, status, pilot_days, started_at, pilot_ends_at, promoted_at, rolled_back_at,"
    " version"
)


class RolloutCreate(RequestModel):
    integration_id: Annotated[str, StringConstraints(pattern=rf"^int_{ULID}$")]
    merchant_id: Annotated[str, StringConstraints(pattern=rf"^mer_{ULID}$")]
    pilot_days: int = Field(default=5, strict=True, ge=1, le=90)
    certification_report: Annotated[str, StringConstraints(min_length=1, max_length=16384)] | None = Field(
        default=None,
        description="production: the integration's certified report from the sandbox (a JWS its report keys verify;"
        " at most 16 KiB, well inside the 64 KiB body limit)",
    )


class RolloutPublic(BaseModel):
    id: str
    integration_id: str
    merchant_id: str
    status: Literal["pilot", "live", "rolled_back"]
    pilot_days: int
    started_at: datetime
    pilot_ends_at: datetime
    promoted_at: datetime | None
    rolled_back_at: datetime | None
    version: int


def _snapshot(row: dict[str, Any]) -> dict[str, Any]:
    return {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in row.items()}


async def _record(
    transaction: Transaction, principal: Principal, row: dict[str, Any], what: str, now: datetime
) -> None:
    """The rollout's event (device-auth learns it) and its audit entry, in the change's transaction."""
    add_event(
        transaction,
        OutboxEvent,
        source="console",
        event_type=f"rollout.{what}",
        merchant_id=row["merchant_id"],
        store_id=None,
        subject=row["id"],
        version=row["version"],
        data=_snapshot(row),
    )
    await log.append(
        transaction.session,
        principal,
        f"rollout.{what}",
        row["id"],
        {"integration_id": row["integration_id"], "merchant_id": row["merchant_id"], "status": row["status"]},
        now,
    )


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=RolloutPublic,
    responses={**NOT_FOUND, **CONFLICT},
    summary="Enable an integration for one merchant: a pilot of pilot_days (admins)",
)
async def start_rollout(
    body: RolloutCreate, principal: AdminDep, transaction: TransactionDep, request: Request
) -> dict[str, Any]:
    session = transaction.session
    integration = (
        await session.execute(
            text("SELECT name, version FROM integrations WHERE id = :id"), {"id": body.integration_id}
        )
    ).one_or_none()
    if integration is None:
        raise NotFound("integration not found")
    settings: ConsoleSettings = request.app.state.settings
    if settings.env is Environment.production:
        _check_certified(body.certification_report, settings, integration.name, integration.version)
    now = now_of(request)
    row: dict[str, Any] = {
        "id": new_id("rol"),
        "integration_id": body.integration_id,
        "merchant_id": body.merchant_id,
        "status": "pilot",
        "pilot_days": body.pilot_days,
        "started_at": now,
        "pilot_ends_at": now + timedelta(days=body.pilot_days),
        "promoted_at": None,
        "rolled_back_at": None,
        "version": 1,
    }
    try:
        async with session.begin_nested():
            await session.execute(
                text(
                    f"INSERT INTO rollouts ({COLUMNS}) VALUES (:id, :integration_id, :merchant_id, :status,"  # noqa: S608
                    " :pilot_days, :started_at, :pilot_ends_at, :promoted_at, :rolled_back_at, :version)"
                ),
                row,
            )
    except IntegrityError:
        raise Conflict("the integration has an active rollout already", code="rollout_active") from None
    await _record(transaction, principal, row, "started", now)
    return row


def _check_certified(report: str | None, settings: ConsoleSettings, name: str, version: str) -> None:
    """Production goes live only with what the sandbox certified: a report its trusted keys verify, for this
    integration (name and version), passed and signed off by the partner and an admin."""
    if report is None:
        raise Unprocessable("production needs the integration's certification report", code="certification_required")
    try:
        content = verify_report(report, settings.trusted_jwks())
    except (jwt.PyJWTError, ValueError):
        raise Unprocessable(
            "the certification report does not verify with the trusted report keys", code="certification_invalid"
        ) from None
    certified = content.get("result") == "passed" and content.get("certified_at")
    if not certified or (content.get("integration_name"), content.get("integration_version")) != (name, version):
        raise Unprocessable(
            "the report does not certify this integration at this version", code="certification_invalid"
        )


async def _read(session: AsyncSession, rollout_id: str, *, lock: bool = False) -> dict[str, Any]:
    lock_clause = " FOR UPDATE" if lock else ""
    row = (
        await session.execute(
            text(f"SELECT {COLUMNS} FROM rollouts WHERE id = :id{lock_clause}"),  # noqa: S608 (constants)
            {"id": rollout_id},
        )
    ).one_or_none()
    if row is None:
        raise NotFound("rollout not found")
    return dict(row._mapping)


async def _readable(session: AsyncSession, principal: Principal, rollout_id: str) -> dict[str, Any]:
    row = await _read(session, rollout_id)
    if principal.role is Role.partner:  # the integration's own partner may follow it
        owner = await session.execute(
            text("SELECT partner_id FROM integrations WHERE id = :id"), {"id": row["integration_id"]}
        )
        if owner.scalar_one_or_none() != principal.partner_id:
            raise NotFound("rollout not found")
    return row


@router.get("/{rollout_id}", response_model=RolloutPublic, responses=NOT_FOUND, summary="Get a rollout")
async def get_rollout(rollout_id: RolloutIdPath, principal: PrincipalDep, session: SessionDep) -> dict[str, Any]:
    return await _readable(session, principal, rollout_id)


class Metric(BaseModel):
    value: float | None = Field(default=None, description="absent while nothing was measured (no answered payment)")
    max: float | None = Field(default=None, description="the threshold it must not exceed")
    min: float | None = Field(default=None, description="the threshold it must reach")
    ok: bool


class HealthWindow(BaseModel):
    from_: datetime = Field(alias="from")
    to: datetime


class RolloutHealth(BaseModel):
    rollout_id: str
    merchant_id: str
    status: str
    window: HealthWindow
    pilot_over: bool
    metrics: dict[str, Metric]
    counts: dict[str, int] = Field(description="payments seen, answered by the gateway, failed, still pending")
    healthy: bool


@router.get(
    "/{rollout_id}/health",
    response_model=RolloutHealth,
    response_model_by_alias=True,
    response_model_exclude_none=True,
    responses=NOT_FOUND,
    summary="The pilot's health from the event stream: payments, failure rate, error rate, webhook mismatches, p95"
    " latency, each against its threshold",
)
async def rollout_health(
    rollout_id: RolloutIdPath, principal: PrincipalDep, session: SessionDep, request: Request
) -> dict[str, Any]:
    row = await _readable(session, principal, rollout_id)
    return await pilot_health(session, row, request.app.state.settings, now_of(request))


async def _change(
    transaction: Transaction,
    principal: Principal,
    rollout_id: str,
    request: Request,
    allowed: tuple[str, ...],
    status_to: str,
    what: str,
) -> dict[str, Any]:
    session = transaction.session
    row = await _read(session, rollout_id, lock=True)
    now = now_of(request)
    if row["status"] not in allowed:
        raise Conflict(f"the rollout is {row['status']}", code=f"rollout_{row['status']}")
    if what == "promoted" and now < row["pilot_ends_at"]:
        raise Conflict(f"the pilot runs until {row['pilot_ends_at'].isoformat()}", code="pilot_not_over")
    if what == "promoted":
        checked = await pilot_health(session, row, request.app.state.settings, now)
        failing = sorted(name for name, metric in checked["metrics"].items() if not metric["ok"])
        if failing:
            raise Conflict(f"the pilot is not healthy: {', '.join(failing)}", code="pilot_unhealthy")
    row.update(status=status_to, version=row["version"] + 1)
    row["promoted_at" if what == "promoted" else "rolled_back_at"] = now
    await session.execute(
        text(
            "UPDATE rollouts SET status = :status, version = :version, promoted_at = :promoted_at,"
            " rolled_back_at = :rolled_back_at WHERE id = :id"
        ),
        row,
    )
    await _record(transaction, principal, row, what, now)
    return row


@router.post(
    "/{rollout_id}/promote",
    response_model=RolloutPublic,
    responses={**NOT_FOUND, **CONFLICT},
    summary="Make a piloted integration live for every merchant, once the pilot window is over and its health meets"
    " every threshold (admins)",
)
async def promote(
    rollout_id: RolloutIdPath, principal: AdminDep, transaction: TransactionDep, request: Request
) -> dict[str, Any]:
    return await _change(transaction, principal, rollout_id, request, ("pilot",), "live", "promoted")


@router.post(
    "/{rollout_id}/rollback",
    response_model=RolloutPublic,
    responses={**NOT_FOUND, **CONFLICT},
    summary="Stop a rollout at once: its devices get no new tokens anywhere (admins)",
)
async def rollback(
    rollout_id: RolloutIdPath, principal: AdminDep, transaction: TransactionDep, request: Request
) -> dict[str, Any]:
    return await _change(transaction, principal, rollout_id, request, ("pilot", "live"), "rolled_back", "rolled_back")
