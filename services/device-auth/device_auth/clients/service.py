from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from smartpos_shared.db import utcnow
from smartpos_shared.ids import new_id

from ..crypto import Vault, hash_secret, new_client_secret
from ..models import OAuthClient
from . import repository
from .schemas import ClientCreate, ClientCreated

_BOOTSTRAP_LOCK = 0x5350_4144


async def create_client(session: AsyncSession, body: ClientCreate) -> ClientCreated:
    """A merchant's or a partner's API client (the body says which)."""
    secret = new_client_secret()
    client = OAuthClient(
        id=new_id("cli"),
        merchant_id=body.merchant_id,
        role=body.role,
        name=body.name,
        secret_hash=await hash_secret(secret),
        status="active",
        created_at=utcnow(),
    )
    session.add(client)
    await session.flush()
    return ClientCreated(
        client_id=client.id,
        client_secret=secret,
        merchant_id=client.merchant_id,
        role=client.role,
        name=client.name,
        created_at=client.created_at,
    )


async def create_operator_admin(session: AsyncSession, name: str) -> tuple[str, str]:
    """Another operator's admin client (its secret is shown once, stored as a hash only)."""
    secret = new_client_secret()
    client = OAuthClient(
        id=new_id("cli"),
        merchant_id=None,
        role="admin",
        name=name,
        secret_hash=await hash_secret(secret),
        status="active",
        created_at=utcnow(),
    )
    session.add(client)
    await session.flush()
    return client.id, secret


async def bootstrap_admin(session: AsyncSession, vault: Vault) -> tuple[str, str]:
    """Create the platform admin client once; later calls return the same credentials."""
    await session.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": _BOOTSTRAP_LOCK})
    existing = await repository.get_bootstrap_admin(session)
    if existing is not None and existing.secret_encrypted is not None:
        return existing.id, vault.decrypt(existing.secret_encrypted).decode()
    secret = new_client_secret()
    client = OAuthClient(
        id=new_id("cli"),
        merchant_id=None,
        role="admin",
        name="platform admin",
        secret_hash=await hash_secret(secret),
        secret_encrypted=vault.encrypt(secret.encode()),
        is_bootstrap=True,
        status="active",
        created_at=utcnow(),
    )
    session.add(client)
    await session.flush()
    return client.id, secret
