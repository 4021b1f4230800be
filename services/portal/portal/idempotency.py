"""`Idempotency-Key` with Stripe's semantics, per principal (the token's subject within its merchant: Stripe scopes
keys per account *and* key), kept 72 hours.

The key is claimed by one statement of its own, committed at once (so a concurrent request with the same key sees
it and gets 409). The stored response is written by the statement that makes the change it describes: either
both persist or neither. A claim left behind by a crashed request is taken over after `STALE_AFTER`. Same key and
same body replays the first response — after the same tenant check a read of that resource gets; a different
body is 422.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import orjson
from fastapi import Header, Request
from fastapi.responses import Response
from pydantic import BaseModel

from smartpos_shared.auth import Principal
from smartpos_shared.errors import Conflict, DomainError, NotFound, Unprocessable
from smartpos_shared.pg import Db

from .checkout.repository import Completion
from .context import RequestContext
from .sandbox.certification import observe
from .tenancy import own_tenant

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

# Money that leaves the merchant (refunds): a retry without a key could pay twice, so the key is required (422).
RequiredIdempotencyKeyHeader = Annotated[
    str,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=255,
        pattern=r"^[\x21-\x7e]+$",
        description="Required: the same key and body return the first response (kept 72 h).",
    ),
]

CLAIM = """
INSERT INTO idempotency_keys (owner, key, request_hash, state, created_at, expires_at)
VALUES ($1, $2, $3, 'in_flight', $4, $5) ON CONFLICT DO NOTHING RETURNING true"""
HELD = """
SELECT request_hash, state, response_status, response_body, created_at, expires_at
FROM idempotency_keys WHERE owner = $1 AND key = $2 FOR UPDATE"""
RECLAIM = """
UPDATE idempotency_keys SET request_hash = $3, state = 'in_flight', response_status = NULL, response_body = NULL,
       created_at = $4, expires_at = $5
WHERE owner = $1 AND key = $2"""
RELEASE = "DELETE FROM idempotency_keys WHERE owner = $1 AND key = $2 AND state = 'in_flight'"
COMPLETE = """
UPDATE idempotency_keys SET state = 'done', response_status = $3, response_body = $4::jsonb
WHERE owner = $1 AND key = $2 AND state = 'in_flight'"""


@dataclass(frozen=True, slots=True)
class Reply:
    """A use case's answer: the status and the representation, serialized once."""

    status: int
    body: bytes
    # False when the use case wrote nothing (an existing resource answered again): the claim is completed on its own.
    recorded: bool = True


@dataclass(frozen=True, slots=True)
class Claim:
    """This request owns the key: its response is stored by the statement that makes its change."""

    owner: str
    key: str

    def completion(self, status: int, body: bytes) -> Completion:
        return Completion(self.owner, self.key, status, body)


@dataclass(frozen=True, slots=True)
class _Stored:
    status: int
    body: str


def owner_of(principal: Principal) -> str:
    """Keys belong to one caller: another device of the same merchant reusing a key is a different request."""
    return f"{principal.merchant_id or 'admin'}/{principal.subject}"


def request_hash(request: Request, body: BaseModel) -> str:
    canonical = json.dumps(body.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(f"{request.method} {request.url.path}\n{canonical}".encode()).hexdigest()


async def _claim(ctx: RequestContext, owner: str, key: str, digest: str) -> _Stored | None:
    """Claim the key, or answer from what it already holds. None when this request owns the key."""
    db: Db = ctx.db
    now = datetime.fromtimestamp(ctx.services.real_clock(), UTC)  # keys expire in real time, whatever the clocks
    if await db.fetchval(CLAIM, owner, key, digest, now, now + RETENTION):
        return None
    async with db.transaction():
        row = await db.fetchrow(HELD, owner, key)
        if (
            row is None
            or row["expires_at"] <= now
            or (row["state"] == "in_flight" and row["created_at"] <= now - STALE_AFTER)
        ):
            # Released meanwhile, expired, or abandoned by a crashed request: take it.
            if row is None:
                await db.execute(CLAIM, owner, key, digest, now, now + RETENTION)
            else:
                await db.execute(RECLAIM, owner, key, digest, now, now + RETENTION)
            return None
        if row["request_hash"] != digest:
            raise Unprocessable("this Idempotency-Key was used with a different request", code="idempotency_key_reused")
        if row["state"] != "done":
            raise Conflict("a request with this Idempotency-Key is still in progress", code="idempotency_in_flight")
        return _Stored(row["response_status"] or 200, row["response_body"])


UseCase = Callable[[Claim | None], Awaitable[Reply]]


async def idempotent(
    ctx: RequestContext, request: Request, key: str | None, body: BaseModel, use_case: UseCase
) -> Response:
    if key is None:
        reply = await use_case(None)
        return Response(reply.body, status_code=reply.status, media_type="application/json")
    principal = ctx.principal
    assert principal is not None
    owner = owner_of(principal)
    stored = await _claim(ctx, owner, key, request_hash(request, body))
    if stored is not None:
        replayed = orjson.loads(stored.body)
        _authorize_replay(principal, replayed)
        await _observe_replay(ctx, request, key, stored.status, replayed)
        return Response(
            stored.body, status_code=stored.status, media_type="application/json", headers={REPLAYED_HEADER: "true"}
        )
    try:
        reply = await use_case(Claim(owner, key))
    except DomainError:
        await ctx.db.execute(RELEASE, owner, key)  # nothing was done: a corrected retry may use the key
        raise
    if not reply.recorded:
        await ctx.db.execute(COMPLETE, owner, key, reply.status, reply.body.decode())
    return Response(reply.body, status_code=reply.status, media_type="application/json")


async def _observe_replay(ctx: RequestContext, request: Request, key: str, status: int, body: Any) -> None:
    """In a certification run, the replay is evidence (case `idempotent_retry`): what was asked again, and the
    resource the first answer named — which the console checks was created once."""
    if not isinstance(body, dict) or not isinstance(body.get("merchant_id"), str):
        return
    await observe(
        ctx.db,
        source="portal",
        event_type="request.replayed",
        merchant_id=body["merchant_id"],
        store_id=body.get("store_id") if isinstance(body.get("store_id"), str) else None,
        subject=str(body.get("id", "")),
        data={
            "method": request.method,
            "path": request.url.path,
            "status": status,
            "resource_id": body.get("id"),
            "idempotency_key_sha256": hashlib.sha256(key.encode()).hexdigest(),
        },
        now=ctx.now(body["merchant_id"]),
    )


def _authorize_replay(principal: Principal, body: Any) -> None:
    """Authorize before replaying: the stored resource gets the same tenant check as a read of it."""
    tenant = own_tenant(principal)
    if tenant is None:
        return
    if not isinstance(body, dict) or body.get("merchant_id") != tenant.merchant_id:
        raise NotFound("not found")
    if tenant.store_id is not None and body.get("store_id") != tenant.store_id:
        raise NotFound("not found")
