"""`smartpos admin bootstrap`: create (or return) the platform admin client, straight against the database; and
`smartpos admin create-operator`: another admin client for another operator (reviews need admins other than the
author). Only someone with access to device-auth's database makes admins: an admin token cannot (POST /clients
refuses `role: admin`), or one admin could mint a second to approve its own change."""

from __future__ import annotations

from smartpos_shared.db import create_engine, make_sessionmaker

from ..crypto import Vault
from ..settings import AuthSettings
from .service import bootstrap_admin, create_operator_admin


async def bootstrap(settings: AuthSettings | None = None) -> dict[str, str]:
    settings = settings or AuthSettings()
    engine = create_engine(settings.database_url, pool_size=1, max_overflow=0)
    try:
        async with make_sessionmaker(engine)() as session, session.begin():
            client_id, secret = await bootstrap_admin(session, Vault(settings.key_encryption_key))
    finally:
        await engine.dispose()
    return {"client_id": client_id, "client_secret": secret}


async def create_operator(name: str, settings: AuthSettings | None = None) -> dict[str, str]:
    settings = settings or AuthSettings()
    engine = create_engine(settings.database_url, pool_size=1, max_overflow=0)
    try:
        async with make_sessionmaker(engine)() as session, session.begin():
            client_id, secret = await create_operator_admin(session, name)
    finally:
        await engine.dispose()
    return {"client_id": client_id, "client_secret": secret}
