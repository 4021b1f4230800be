"""The audit log: append-only (a trigger refuses UPDATE, DELETE and TRUNCATE) and hash-chained.

Each entry's `hash` is SHA-256 over its canonical JSON (sorted keys, no spaces; `at` in UTC ISO 8601) including
the previous entry's hash (`GENESIS` for the first). Entries are appended in the transaction of the change they
record, one at a time (a transaction-level advisory lock), so `seq` has no gap and the chain never forks.
`verify` recomputes the chain and names the first entry that does not match: an entry edited by someone who
disabled the trigger, or one removed.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from smartpos_shared.auth import Principal

GENESIS = "0" * 64
LOCK = "SELECT pg_advisory_xact_lock(hashtextextended('console:audit_log', 0))"
LAST = "SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1"
INSERT = """
INSERT INTO audit_log (seq, at, actor_role, actor_id, action, subject, detail, previous_hash, hash)
VALUES (:seq, :at, :actor_role, :actor_id, :action, :subject, CAST(:detail AS jsonb), :previous_hash, :hash)"""
COLUMNS = "seq, at, actor_role, actor_id, action, subject, detail, previous_hash, hash"
PAGE = f"SELECT {COLUMNS} FROM audit_log WHERE seq > :after ORDER BY seq LIMIT :limit"  # noqa: S608 (constants)
CHAIN = f"SELECT {COLUMNS} FROM audit_log ORDER BY seq"  # noqa: S608 (constants)
LATEST = f"SELECT {COLUMNS} FROM audit_log ORDER BY seq DESC LIMIT :limit"  # noqa: S608 (constants)


def _document(entry: dict[str, Any]) -> dict[str, Any]:
    at = entry["at"]
    return {
        "seq": entry["seq"],
        "at": (at.astimezone(UTC) if isinstance(at, datetime) else datetime.fromisoformat(at)).isoformat(),
        "actor_role": entry["actor_role"],
        "actor_id": entry["actor_id"],
        "action": entry["action"],
        "subject": entry["subject"],
        "detail": json.loads(entry["detail"]) if isinstance(entry["detail"], str) else entry["detail"],
        "previous_hash": entry["previous_hash"],
    }


def digest(entry: dict[str, Any]) -> str:
    canonical = json.dumps(_document(entry), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


async def append(
    session: AsyncSession, actor: Principal, action: str, subject: str, detail: dict[str, Any], at: datetime
) -> dict[str, Any]:
    """Append one entry in the caller's transaction (it commits or rolls back with the change it records)."""
    return await append_as(session, str(actor.role), actor.subject, action, subject, detail, at)


async def append_as(
    session: AsyncSession, role: str, actor_id: str, action: str, subject: str, detail: dict[str, Any], at: datetime
) -> dict[str, Any]:
    """`append` for an actor another service names (its event says who acted: an admin, or the scheduler)."""
    await session.execute(text(LOCK))
    last = (await session.execute(text(LAST))).one_or_none()
    entry: dict[str, Any] = {
        "seq": 1 if last is None else last.seq + 1,
        "at": at.astimezone(UTC),
        "actor_role": role,
        "actor_id": actor_id,
        "action": action,
        "subject": subject,
        "detail": detail,
        "previous_hash": GENESIS if last is None else last.hash,
    }
    entry["hash"] = digest(entry)
    await session.execute(text(INSERT), {**entry, "detail": json.dumps(detail)})
    return public(entry)


def public(entry: Any) -> dict[str, Any]:
    row = dict(entry) if isinstance(entry, dict) else dict(entry._mapping)
    document = _document(row)
    return {**document, "hash": row["hash"]}


@dataclass(frozen=True)
class Verification:
    intact: bool
    entries: int
    broken_at: int | None = None
    problem: str | None = None

    def body(self) -> dict[str, Any]:
        return {"intact": self.intact, "entries": self.entries, "broken_at": self.broken_at, "problem": self.problem}


async def verify(session: AsyncSession) -> Verification:
    previous, expected_seq, count = GENESIS, 1, 0
    for row in await session.execute(text(CHAIN)):
        entry = dict(row._mapping)
        count += 1
        if entry["seq"] != expected_seq:
            return Verification(False, count, entry["seq"], f"entry {expected_seq} is missing")
        if entry["previous_hash"] != previous:
            return Verification(False, count, entry["seq"], "previous_hash does not link to the entry before")
        if digest(entry) != entry["hash"]:
            return Verification(False, count, entry["seq"], "the hash does not match the entry's content")
        previous, expected_seq = entry["hash"], expected_seq + 1
    return Verification(True, count)


async def page(session: AsyncSession, after: int, limit: int) -> list[dict[str, Any]]:
    return [public(row) for row in await session.execute(text(PAGE), {"after": after, "limit": limit})]


async def latest(session: AsyncSession, limit: int) -> list[dict[str, Any]]:
    """The newest entries, newest first (the console's page)."""
    return [public(row) for row in await session.execute(text(LATEST), {"limit": limit})]
