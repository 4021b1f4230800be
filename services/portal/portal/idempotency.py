"""`Idempotency-Key` with Stripe's semantics, per principal (the token's subject within its merchant: Stripe scopes
keys per account *and* key), kept 72 hours.

The key is claimed in its own short transaction (so a concurrent request with the same key sees it at once and
gets 409). The stored response is written in the request's own transaction, together with the change it
describes: either both persist or neither. A claim left behind by a crashed request is taken over after
`STALE_AFTER`. Same key and same body replays the first response; a different body is 422.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated, Any

from fastapi import Header, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy import delete, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from smartpos_shared.auth import Principal
from smartpos_shared.db import utcnow
from smartpos_shared.errors import Conflict, DomainError, NotFound, Unprocessable

from .models import IdempotencyKey
from .tenancy import Scope

RETENTION = timedelta(hours=72)
STALE_AFTER = timedelta(seconds=60)
REPLAYED_HEADER = "Idempotent-Replayed"

IdempotencyKeyHeader = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=255,
        pattern=r"^[\x21-\x7e]+$",
        description="Retry-safe key: the same key and body return the first response (kept 72 h).",
    ),
]


def _request_hash(request: Request, body: BaseModel) -> str:
    canonical = json.dumps(body.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(f"{request.method} {request.url.path}\n{canonical}".encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class _StoredResponse:
    status: int
    body: dict[str, Any]


def owner_of(principal: Principal) -> str:
    """Keys belong to one caller: another device of the same merchant reusing a key is a different request."""
    return f"{principal.merchant_id or 'admin'}/{principal.subject}"


async def _claim(
    sessionmaker: async_sessionmaker[AsyncSession], owner: str, key: str, digest: str
) -> _StoredResponse | None:
    """Claim the key, or answer from what it already holds. Returns None when this request owns the key."""
    now = utcnow()
    async with sessionmaker() as session, session.begin():
        claimed = await session.execute(
            insert(IdempotencyKey)
            .values(
                owner=owner, key=key, request_hash=digest, state="in_flight", created_at=now, expires_at=now + RETENTION
            )
            .on_conflict_do_nothing()
            .returning(IdempotencyKey.key)
        )
        if claimed.first() is not None:
            return None
        row = (
            await session.execute(
                select(IdempotencyKey).where(IdempotencyKey.owner == owner, IdempotencyKey.key == key).with_for_update()
            )
        ).scalar_one()
        if row.expires_at <= now:
            await session.delete(row)
            await session.flush()
            session.add(
                IdempotencyKey(
                    owner=owner,
                    key=key,
                    request_hash=digest,
                    state="in_flight",
                    created_at=now,
                    expires_at=now + RETENTION,
                )
            )
            return None
        if row.request_hash != digest:
            raise Unprocessable("this Idempotency-Key was used with a different request", code="idempotency_key_reused")
        if row.state == "done":
            return _StoredResponse(row.response_status or 200, row.response_body or {})
        if row.created_at > now - STALE_AFTER:
            raise Conflict("a request with this Idempotency-Key is still in progress", code="idempotency_in_flight")
        row.created_at = now  # abandoned by a crashed request: take it over
        return None


async def _release(sessionmaker: async_sessionmaker[AsyncSession], owner: str, key: str) -> None:
    async with sessionmaker() as session, session.begin():
        await session.execute(
            delete(IdempotencyKey).where(
                IdempotencyKey.owner == owner, IdempotencyKey.key == key, IdempotencyKey.state == "in_flight"
            )
        )


async def idempotent(
    request: Request,
    session: AsyncSession,
    principal: Principal,
    key: str | None,
    body: BaseModel,
    handler: Callable[[], Awaitable[BaseModel]],
    status_code: int = 201,
) -> JSONResponse:
    if key is None:
        result = await handler()
        return JSONResponse(result.model_dump(mode="json"), status_code=status_code)
    owner = owner_of(principal)
    sessionmaker: async_sessionmaker[AsyncSession] = request.app.state.sessionmaker
    replay = await _claim(sessionmaker, owner, key, _request_hash(request, body))
    if replay is not None:
        # Authorize before replaying: the stored resource gets the same tenant check as a read of it.
        merchant_id, store_id = replay.body.get("merchant_id"), replay.body.get("store_id")
        if not isinstance(merchant_id, str) or not Scope.of(principal).allows(merchant_id, store_id):
            raise NotFound("not found")
        return JSONResponse(replay.body, status_code=replay.status, headers={REPLAYED_HEADER: "true"})
    try:
        result = await handler()
    except DomainError:
        # Nothing was done: free the key so a corrected retry can use it.
        await _release(sessionmaker, owner, key)
        raise
    payload = result.model_dump(mode="json")
    await session.execute(
        update(IdempotencyKey)
        .where(IdempotencyKey.owner == owner, IdempotencyKey.key == key)
        .values(state="done", response_status=status_code, response_body=payload)
    )
    return JSONResponse(payload, status_code=status_code)
