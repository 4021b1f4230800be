from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from smartpos_shared.pg import Db

from ..models import OAuthClient


@dataclass(frozen=True, slots=True)
class TokenClient:
    id: str
    role: str
    merchant_id: str | None
    secret_hash: str
    status: str


async def client_for_token(db: Db, client_id: str) -> TokenClient | None:
    """The client a token request names (then proved by its secret). One statement, no transaction."""
    row = await db.fetchrow(
        "SELECT id, role, merchant_id, secret_hash, status FROM oauth_clients WHERE id = $1", client_id
    )
    return TokenClient(*row) if row is not None else None


async def get_bootstrap_admin(session: AsyncSession) -> OAuthClient | None:
    result = await session.execute(select(OAuthClient).where(OAuthClient.is_bootstrap.is_(True)))
    return result.scalar_one_or_none()
