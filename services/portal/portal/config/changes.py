"""Change requests: a configuration proposed for a merchant (a bundle exported from staging), reviewed, applied
whole at once or at its scheduled time, and revertible.

- Proposed (`pending_approval`): the bundle is validated against the schema (422 names the offending fields),
  diffed against the live configuration, and the live configuration it was diffed against is kept (`base`).
- Approved by `PORTAL_CHANGE_APPROVALS` admins, never its author (also a CHECK on the approvals table). The last
  approval applies it at once — unless it is scheduled (`apply_at`): the scheduler applies it when due.
- Applied in one transaction under the merchant's row lock: if the live configuration is no longer the `base`,
  nothing is written and the change `failed`, naming the paths that changed meanwhile; else the live
  configuration becomes the bundle's, the replaced one is kept (`previous`) and `config.changed` is recorded.
- Reverted (`POST …/revert`): `previous` is written back the same way, if nothing changed since the apply.

Every step records `change_request.<step>` (the console appends it to its audit log) in the step's transaction.
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from smartpos_shared.auth import Principal
from smartpos_shared.db import Transaction
from smartpos_shared.errors import Conflict, Forbidden, NotFound
from smartpos_shared.ids import new_id

from ..events import emit
from . import document as config

COLUMNS = (
    "id, merchant_id, author_id, status, bundle, checksum, base, base_checksum, diff, approvals_required, apply_at,"
    " previous, failure, created_at, applied_at, reverted_at, version"
)
PUBLIC = (
    "id", "merchant_id", "author_id", "status", "checksum", "base_checksum", "diff", "approvals_required", "apply_at",
    "failure", "created_at", "applied_at", "reverted_at", "version",
)  # fmt: skip
DUE = """
SELECT /* tenant-resolution */ id, merchant_id FROM change_requests WHERE status = 'approved' AND apply_at <= :now
ORDER BY apply_at, id LIMIT 100"""


async def resolve(session: AsyncSession, change_id: str) -> str | None:
    """The merchant a change request is for: the work then goes on scoped to it."""
    merchant: str | None = (
        await session.execute(
            text("SELECT merchant_id FROM change_requests WHERE id = :id /* tenant-resolution */"), {"id": change_id}
        )
    ).scalar_one_or_none()
    return merchant


async def read(session: AsyncSession, merchant_id: str, change_id: str, *, lock: bool = False) -> dict[str, Any] | None:
    row = (
        await session.execute(
            text(
                f"SELECT {COLUMNS} FROM change_requests WHERE id = :id AND merchant_id = :m"  # noqa: S608
                + (" FOR UPDATE" if lock else "")
            ),
            {"id": change_id, "m": merchant_id},
        )
    ).one_or_none()
    return None if row is None else dict(row._mapping)


async def listed(
    session: AsyncSession, merchant_id: str | None, status: str | None, before_id: str | None, limit: int
) -> list[dict[str, Any]]:
    """Change requests, newest first (a reviewer's queue: every merchant's, or one's), optionally of one status."""
    rows = await session.execute(
        text(
            f"SELECT {COLUMNS} FROM change_requests WHERE (CAST(:m AS text) IS NULL OR merchant_id = :m)"  # noqa: S608
            " AND (CAST(:status AS text) IS NULL OR status = :status)"
            " AND (CAST(:before AS text) IS NULL OR id < :before)"
            " ORDER BY id DESC LIMIT :limit /* tenant-resolution */"  # the reviewers' queue, across merchants
        ),
        {"m": merchant_id, "status": status, "before": before_id, "limit": limit + 1},
    )
    return [dict(row._mapping) for row in rows]


async def public(session: AsyncSession, row: dict[str, Any]) -> dict[str, Any]:
    approvals = (
        await session.execute(
            text(
                "SELECT principal_id, approved_at FROM change_request_approvals"
                " WHERE change_request_id = :id AND merchant_id = :m ORDER BY approved_at, principal_id"
            ),
            {"id": row["id"], "m": row["merchant_id"]},
        )
    ).all()
    return {
        **{k: row[k] for k in PUBLIC},
        "approvals": [{"principal_id": a.principal_id, "approved_at": a.approved_at} for a in approvals],
    }


async def off_peak(session: AsyncSession, merchant_id: str, at: time, now: datetime) -> datetime:
    """The next moment it is `at` local time in the merchant's stores (the latest of them when they span time
    zones: by then every store has passed its off-peak hour)."""
    zones = (
        await session.execute(
            text("SELECT DISTINCT timezone FROM stores WHERE merchant_id = :m"), {"m": merchant_id}
        )
    ).scalars().all() or ["UTC"]  # fmt: skip
    moments = []
    for zone in zones:
        local = now.astimezone(ZoneInfo(zone))
        candidate = datetime.combine(local.date(), at, tzinfo=ZoneInfo(zone))
        if candidate <= local:
            candidate = datetime.combine(local.date() + timedelta(days=1), at, tzinfo=ZoneInfo(zone))
        moments.append(candidate.astimezone(UTC))
    return max(moments)


def _event(transaction: Transaction, row: dict[str, Any], step: str, actor: Principal | None) -> None:
    emit(
        transaction,
        f"change_request.{step}",
        merchant_id=row["merchant_id"],
        store_id=None,
        subject=row["id"],
        version=row["version"],
        data={
            **{k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in row.items() if k in PUBLIC},
            "actor": None if actor is None else {"role": str(actor.role), "id": actor.subject},
        },
    )


async def propose(
    transaction: Transaction,
    principal: Principal,
    merchant_id: str,
    document: config.ConfigDocument,
    apply_at: datetime | None,
    approvals_required: int,
    now: datetime,
) -> dict[str, Any]:
    session = transaction.session
    live = await config.load(session, merchant_id)
    if live is None:
        raise NotFound("merchant not found")
    base, _ = live
    proposed = document.canonical()
    row: dict[str, Any] = {
        "id": new_id("chg"),
        "merchant_id": merchant_id,
        "author_id": principal.subject,
        "status": "pending_approval",
        "bundle": proposed,
        "checksum": config.checksum(proposed),
        "base": base,
        "base_checksum": config.checksum(base),
        "diff": config.diff(base, proposed),
        "approvals_required": approvals_required,
        "apply_at": apply_at,
        "previous": None,
        "failure": None,
        "created_at": now,
        "applied_at": None,
        "reverted_at": None,
        "version": 1,
    }
    await session.execute(
        text(
            f"INSERT INTO change_requests ({COLUMNS}) VALUES (:id, :merchant_id, :author_id, :status,"  # noqa: S608
            " CAST(:bundle AS jsonb), :checksum, CAST(:base AS jsonb), :base_checksum, CAST(:diff AS jsonb),"
            " :approvals_required, :apply_at, NULL, NULL, :created_at, NULL, NULL, :version)"
        ),
        _json(row),
    )
    _event(transaction, row, "created", principal)
    return row


async def approve(transaction: Transaction, principal: Principal, change_id: str, now: datetime) -> dict[str, Any]:
    session = transaction.session
    merchant_id = await resolve(session, change_id)
    if merchant_id is None:
        raise NotFound("change request not found")
    await config.lock(session, merchant_id)  # merchant, then change request: the order apply takes
    row = await read(session, merchant_id, change_id, lock=True)
    assert row is not None
    if row["status"] != "pending_approval":
        raise Conflict(f"the change request is {row['status']}", code=f"change_{row['status']}")
    if row["author_id"] == principal.subject:
        raise Forbidden("the author of a change request cannot approve it", code="author_cannot_approve")
    inserted = (
        await session.execute(
            text(
                "INSERT INTO change_request_approvals (change_request_id, merchant_id, principal_id, author_id,"
                " approved_at) VALUES (:id, :m, :principal, :author, :now) ON CONFLICT DO NOTHING RETURNING 1"
            ),
            {"id": change_id, "m": merchant_id, "principal": principal.subject, "author": row["author_id"], "now": now},
        )
    ).first()
    if inserted is None:
        raise Conflict("this principal approved the change request already", code="already_approved")
    approvals = (
        await session.execute(
            text("SELECT count(*) FROM change_request_approvals WHERE change_request_id = :id AND merchant_id = :m"),
            {"id": change_id, "m": merchant_id},
        )
    ).scalar_one()
    _event(transaction, row, "approved", principal)
    if approvals < row["approvals_required"]:
        return row
    row = await _update(session, row, status="approved")
    if row["apply_at"] is None:  # not scheduled: applied at once, in this transaction
        return await apply_locked(transaction, row, now, principal)
    return row


async def apply_locked(
    transaction: Transaction, row: dict[str, Any], now: datetime, actor: Principal | None
) -> dict[str, Any]:
    """Apply an approved change request; the caller holds the merchant's and the change request's locks."""
    session = transaction.session
    live = await config.load(session, row["merchant_id"])
    assert live is not None
    current, _ = live
    if config.checksum(current) != row["base_checksum"]:
        changed = config.diff(row["base"], current)
        failure = {
            "code": "configuration_changed",
            "detail": "the live configuration changed since the diff was made: nothing was applied",
            "conflicts": changed,
        }
        row = await _update(session, row, status="failed", failure=failure)
        _event(transaction, row, "failed", actor)
        return row
    version = await config.write(session, row["merchant_id"], row["bundle"], now)
    row = await _update(session, row, status="applied", previous=current, applied_at=now)
    _event(transaction, row, "applied", actor)
    _config_changed(transaction, row, version, row["checksum"])
    return row


async def revert(transaction: Transaction, principal: Principal, change_id: str, now: datetime) -> dict[str, Any]:
    session = transaction.session
    merchant_id = await resolve(session, change_id)
    if merchant_id is None:
        raise NotFound("change request not found")
    await config.lock(session, merchant_id)
    row = await read(session, merchant_id, change_id, lock=True)
    assert row is not None
    if row["status"] != "applied":
        raise Conflict(
            f"only an applied change is reverted; this one is {row['status']}", code=f"change_{row['status']}"
        )
    live = await config.load(session, row["merchant_id"])
    assert live is not None
    current, _ = live
    if config.checksum(current) != row["checksum"]:
        raise Conflict(
            "the configuration changed since this change was applied: revert the later change first",
            code="configuration_changed",
            extra={"conflicts": config.diff(row["bundle"], current)},
        )
    previous = row["previous"]
    version = await config.write(session, row["merchant_id"], previous, now)
    row = await _update(session, row, status="reverted", reverted_at=now)
    _event(transaction, row, "reverted", principal)
    _config_changed(transaction, row, version, config.checksum(previous))
    return row


async def apply_due(sessionmaker: async_sessionmaker[AsyncSession], now: datetime) -> list[dict[str, Any]]:
    """The scheduler's part: apply every approved change request whose time has come (each in its own
    transaction; one another scheduler holds is skipped). The changes applied or failed."""
    done = []
    async with sessionmaker() as session:
        due = (await session.execute(text(DUE), {"now": now})).all()
    for change_id, merchant_id in due:
        async with sessionmaker() as session, session.begin():
            transaction = Transaction(session)
            locked = await session.execute(
                text("SELECT 1 FROM merchants WHERE id = :m FOR UPDATE SKIP LOCKED"), {"m": merchant_id}
            )
            if locked.first() is None:
                continue  # another scheduler (or a reviewer) holds it: it is done there, or on the next pass
            row = await read(session, merchant_id, change_id, lock=True)
            if row is None or row["status"] != "approved" or row["apply_at"] is None or row["apply_at"] > now:
                continue
            done.append(await apply_locked(transaction, row, now, None))
            await session.execute(text("SELECT pg_notify('smartpos_outbox', '')"))
    return done


def _config_changed(transaction: Transaction, row: dict[str, Any], version: int, checksum: str) -> None:
    emit(
        transaction,
        "config.changed",
        merchant_id=row["merchant_id"],
        store_id=None,
        subject=row["merchant_id"],
        version=version,
        data={"merchant_id": row["merchant_id"], "version": version, "checksum": checksum,
              "change_request_id": row["id"], "status": row["status"]},
    )  # fmt: skip


async def _update(session: AsyncSession, row: dict[str, Any], **changes: Any) -> dict[str, Any]:
    updated = {**row, **changes, "version": row["version"] + 1}
    await session.execute(
        text(
            "UPDATE change_requests SET status = :status, previous = CAST(:previous AS jsonb),"
            " failure = CAST(:failure AS jsonb), applied_at = :applied_at, reverted_at = :reverted_at,"
            " version = :version WHERE id = :id AND merchant_id = :merchant_id AND version = :expected"
        ),
        {**_json(updated), "expected": row["version"]},
    )
    return updated


def _json(row: dict[str, Any]) -> dict[str, Any]:
    import json

    return {
        k: (json.dumps(v) if k in ("bundle", "base", "diff", "previous", "failure") and v is not None else v)
        for k, v in row.items()
    }
