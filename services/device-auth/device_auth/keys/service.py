"""The keys that sign access tokens: created on first start, rotated on demand, encrypted at rest.

The newest active key signs. After a rotation the previous key stays in the JWKS for a grace period longer than
any token it signed can live, so resource servers keep verifying those tokens.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import jwt
import structlog
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from smartpos_shared.db import utcnow
from smartpos_shared.errors import ServiceUnavailable
from smartpos_shared.ids import new_id

from ..crypto import Vault
from ..models import SigningKey
from . import repository

log = structlog.get_logger("smartpos.auth.keys")

ALGORITHM = "ES256"
CACHE_SECONDS = 5.0


class NoSigningKey(ServiceUnavailable):
    pass


@dataclass(frozen=True)
class ActiveKey:
    kid: str
    private_key: ec.EllipticCurvePrivateKey


def _new_signing_key(vault: Vault) -> SigningKey:
    private_key = ec.generate_private_key(ec.SECP256R1())
    kid = new_id("key")
    public_jwk: dict[str, Any] = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(private_key.public_key()))
    public_jwk.update({"kid": kid, "alg": ALGORITHM, "use": "sig"})
    pem = private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return SigningKey(kid=kid, algorithm=ALGORITHM, private_key_encrypted=vault.encrypt(pem), public_jwk=public_jwk)


class KeyRing:
    """Signing key and JWKS, cached for a few seconds so token requests do not read them each time."""

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession], vault: Vault, retired_grace: int) -> None:
        self._sessionmaker = sessionmaker
        self._vault = vault
        self._retired_grace = retired_grace
        self._active: ActiveKey | None = None
        self._jwks: dict[str, Any] | None = None
        self._loaded_at = float("-inf")

    async def ensure_key(self) -> None:
        """Create the first signing key if there is none (safe when several processes start at once)."""
        async with self._sessionmaker() as session, session.begin():
            if await repository.newest_active_key(session) is None:
                await repository.lock_keyring(session)
                if await repository.newest_active_key(session) is None:
                    session.add(_new_signing_key(self._vault))
        self.invalidate()

    async def ensure_key_eventually(self) -> None:
        delay = 0.2
        while True:
            try:
                await self.ensure_key()
                return
            except Exception as exc:
                log.warning("signing_key_setup_failed", error=type(exc).__name__, retry_in=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def rotate(self, session: AsyncSession) -> str:
        await repository.lock_keyring(session)
        await repository.retire_active_keys(session)
        key = _new_signing_key(self._vault)
        session.add(key)
        await session.flush()
        self.invalidate()
        return key.kid

    def invalidate(self) -> None:
        self._loaded_at = float("-inf")

    async def _load(self) -> None:
        if time.monotonic() - self._loaded_at < CACHE_SECONDS and self._active is not None:
            return
        async with self._sessionmaker() as session:
            newest = await repository.newest_active_key(session)
            published = await repository.published_keys(
                session, retired_after=utcnow() - timedelta(seconds=self._retired_grace)
            )
        if newest is None:
            # First start and the background task has not run yet: the database answers, so create it now.
            await self.ensure_key()
            async with self._sessionmaker() as session:
                newest = await repository.newest_active_key(session)
                published = [newest] if newest is not None else []
        if newest is None:
            raise NoSigningKey("no active signing key yet")
        private_key = serialization.load_pem_private_key(self._vault.decrypt(newest.private_key_encrypted), None)
        assert isinstance(private_key, ec.EllipticCurvePrivateKey)
        self._active = ActiveKey(newest.kid, private_key)
        self._jwks = {"keys": [key.public_jwk for key in published]}
        self._loaded_at = time.monotonic()

    async def active(self) -> ActiveKey:
        await self._load()
        assert self._active is not None
        return self._active

    async def jwks(self) -> dict[str, Any]:
        await self._load()
        assert self._jwks is not None
        return self._jwks
