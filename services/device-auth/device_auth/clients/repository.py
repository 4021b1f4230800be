from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from ..models import OAuthClient


async def get_client(session: AsyncSession, client_id: str) -> OAuthClient | None:
    return await session.get(OAuthClient, client_id)


async def get_bootstrap_admin(session: AsyncSession) -> OAuthClient | None:
    result = await session.execute(select(OAuthClient).where(OAuthClient.is_bootstrap.is_(True)))
    return result.scalar_one_or_none()
