"""Encryption at rest for the service's secrets (signing keys, the bootstrap admin secret) and the slow hash
for client secrets."""

from __future__ import annotations

import asyncio
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from cryptography.fernet import Fernet

_hasher = PasswordHasher()  # argon2id with the library's recommended (RFC 9106 low-memory) parameters
# Verified when a client id is unknown, so that the answer takes as long as for a wrong secret.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(32))


def new_client_secret() -> str:
    return "sps_" + secrets.token_urlsafe(32)


async def hash_secret(secret: str) -> str:
    return await asyncio.to_thread(_hasher.hash, secret)


async def verify_secret(secret_hash: str | None, secret: str) -> bool:
    """Constant-shape check in a worker thread (argon2 is deliberately slow; the event loop must not wait)."""

    def check() -> bool:
        try:
            return _hasher.verify(secret_hash or _DUMMY_HASH, secret) and secret_hash is not None
        except (VerificationError, InvalidHashError):
            return False

    return await asyncio.to_thread(check)


class Vault:
    def __init__(self, key_encryption_key: str) -> None:
        self._fernet = Fernet(key_encryption_key.encode())

    def encrypt(self, plaintext: bytes) -> bytes:
        return self._fernet.encrypt(plaintext)

    def decrypt(self, token: bytes) -> bytes:
        return self._fernet.decrypt(token)
