from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from ..models import SigningKey

_KEYRING_LOCK = 0x5350_4B45  # pg advisory lock id: one process at a time creates or rotates keys


async def lock_keyring(session: AsyncSession) -> None:
    await session.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": _KEYRING_LOCK})


async def newest_active_key(session: AsyncSession) -> SigningKey | None:
    result = await session.execute(
        select(SigningKey).where(SigningKey.retired_at.is_(None)).order_by(SigningKey.created_at.desc()).limit(1)
    )
    return result.scalar_one_or_none()


async def published_keys(session: AsyncSession, retired_after: datetime) -> list[SigningKey]:
    result = await session.execute(
        select(SigningKey)
        .where((SigningKey.retired_at.is_(None)) | (SigningKey.retired_at > retired_after))
        .order_by(SigningKey.created_at.desc())
    )
    return list(result.scalars())


async def retire_active_keys(session: AsyncSession) -> None:
    await session.execute(update(SigningKey).where(SigningKey.retired_at.is_(None)).values(retired_at=func.now()))
