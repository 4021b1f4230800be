"""People who sign in through a browser (merchant staff, operators): users with a password, signed in with the
OAuth 2.0 authorization code flow and PKCE (RFC 7636, S256 only), following the OAuth 2.0 Security BCP (RFC 9700):
registered public clients with exact redirect URIs, no implicit flow, one-time codes bound to the client, the
redirect URI and the code challenge, refresh tokens rotated on every use with reuse detection (a refresh token
used twice revokes its whole family).

Passwords are argon2id hashes (as client secrets). A user is locked for `login_lockout_seconds` after
`login_failure_limit` failed sign-ins in a row; while locked, even the right password is refused. The answer to a
failed sign-in never says which part was wrong.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import structlog
from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from smartpos_shared.ids import new_id

from ..crypto import hash_secret, verify_secret

log = structlog.get_logger("smartpos.auth.users")

CODE_TTL_SECONDS = 60
CHALLENGE_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")


@dataclass(frozen=True)
class User:
    id: str
    email: str
    role: str
    merchant_id: str | None
    partner_id: str | None = None  # partner engineers: the partner organisation (its API client's id)


def normalized(email: str) -> str:
    return email.strip().lower()


async def create_user(
    session: AsyncSession, email: str, password: str, role: str, merchant_id: str | None, partner_id: str | None = None
) -> User:
    user = User(new_id("usr"), normalized(email), role, merchant_id, partner_id)
    await session.execute(
        text(
            "INSERT INTO users (id, email, password_hash, role, merchant_id, partner_id, status, failed_logins,"
            " created_at) VALUES (:id, :email, :hash, :role, :merchant_id, :partner_id, 'active', 0, now())"
        ),
        {"id": user.id, "email": user.email, "hash": await hash_secret(password), "role": role,
         "merchant_id": merchant_id, "partner_id": partner_id},
    )  # fmt: skip
    return user


async def sign_in(
    session: AsyncSession, email: str, password: str, now: datetime, *, limit: int, lockout: timedelta
) -> User | None:
    """The user, if the password is right and the user is neither locked nor disabled; else None, with the
    failure counted (the caller commits either way)."""
    row = (
        await session.execute(
            text(
                "SELECT id, email, password_hash, role, merchant_id, partner_id, status, failed_logins, locked_until"
                " FROM users"
                " WHERE email = :email FOR UPDATE"
            ),
            {"email": normalized(email)},
        )
    ).one_or_none()
    right = await verify_secret(row.password_hash if row is not None else None, password)  # same cost either way
    if row is None:
        log.info("sign_in_refused", reason="unknown_user")
        return None
    if row.status != "active" or (row.locked_until is not None and row.locked_until > now):
        log.warning("sign_in_refused", reason="locked" if row.status == "active" else "disabled", user_id=row.id)
        return None
    if not right:
        failures = row.failed_logins + 1
        locked_until = now + lockout if failures >= limit else None
        await session.execute(
            text("UPDATE users SET failed_logins = :n, locked_until = :until WHERE id = :id"),
            {"n": 0 if locked_until else failures, "until": locked_until, "id": row.id},
        )
        log.warning("sign_in_refused", reason="password", user_id=row.id, locked=locked_until is not None)
        return None
    await session.execute(
        text("UPDATE users SET failed_logins = 0, locked_until = NULL, last_sign_in_at = :now WHERE id = :id"),
        {"now": now, "id": row.id},
    )
    return User(row.id, row.email, row.role, row.merchant_id, row.partner_id)


def valid_challenge(challenge: str) -> bool:
    """RFC 7636 4.2: an S256 challenge is 43 base64url characters."""
    return len(challenge) == 43 and set(challenge) <= CHALLENGE_CHARS


def challenge_of(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode("ascii")).digest()).rstrip(b"=").decode()


def valid_verifier(verifier: str) -> bool:
    """RFC 7636 4.1: 43 to 128 unreserved characters."""
    return 43 <= len(verifier) <= 128 and set(verifier) <= CHALLENGE_CHARS


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


async def issue_code(redis: Redis[bytes], user: User, client_id: str, redirect_uri: str, challenge: str) -> str:
    """A one-time code (60 s) bound to the client, its redirect URI and the PKCE challenge; only its hash is kept."""
    code = secrets.token_urlsafe(32)
    grant = {"user_id": user.id, "role": user.role, "merchant_id": user.merchant_id, "partner_id": user.partner_id,
             "client_id": client_id,
             "redirect_uri": redirect_uri, "challenge": challenge}  # fmt: skip
    await redis.set(f"auth:code:{_digest(code)}", json.dumps(grant), ex=CODE_TTL_SECONDS)
    return code


async def redeem_code(redis: Redis[bytes], code: str) -> dict[str, Any] | None:
    """The code's grant, once: GETDEL makes a second redemption (a replay) find nothing."""
    raw = await redis.getdel(f"auth:code:{_digest(code)}")
    return None if raw is None else dict(json.loads(raw))


async def new_refresh_token(
    session: AsyncSession, user_id: str, client_id: str, family_id: str | None, now: datetime, lifetime: timedelta
) -> str:
    token = "spr_" + secrets.token_urlsafe(32)
    await session.execute(
        text(
            "INSERT INTO refresh_tokens (token_hash, family_id, user_id, client_id, created_at, expires_at)"
            " VALUES (:hash, :family, :user_id, :client_id, :now, :expires)"
        ),
        {"hash": _digest(token), "family": family_id or new_id("rtf"), "user_id": user_id, "client_id": client_id,
         "now": now, "expires": now + lifetime},
    )  # fmt: skip
    return token


async def rotate(
    session: AsyncSession, token: str, client_id: str, now: datetime, lifetime: timedelta
) -> tuple[User, str] | str:
    """Spend a refresh token for a new one of the same family; else why not (`unknown`, `reused`, `expired`). A
    token used before means it leaked (or a client raced itself): the whole family is revoked (RFC 9700 4.14.2),
    which the caller commits with its refusal."""
    row = (
        await session.execute(
            text(
                "SELECT r.family_id, r.user_id, r.client_id, r.expires_at, r.used_at, r.revoked_at, u.email, u.role,"
                " u.merchant_id, u.partner_id, u.status FROM refresh_tokens r JOIN users u ON u.id = r.user_id"
                " WHERE r.token_hash = :hash FOR UPDATE OF r"
            ),
            {"hash": _digest(token)},
        )
    ).one_or_none()
    if row is None or row.client_id != client_id:
        return "unknown"
    if row.used_at is not None or row.revoked_at is not None:
        await session.execute(
            text("UPDATE refresh_tokens SET revoked_at = :now WHERE family_id = :family AND revoked_at IS NULL"),
            {"now": now, "family": row.family_id},
        )
        log.warning("refresh_token_reused", family_id=row.family_id, user_id=row.user_id)
        return "reused"
    if row.expires_at <= now or row.status != "active":
        return "expired"
    await session.execute(
        text("UPDATE refresh_tokens SET used_at = :now WHERE token_hash = :hash"), {"now": now, "hash": _digest(token)}
    )
    fresh = await new_refresh_token(session, row.user_id, client_id, row.family_id, now, lifetime)
    return User(row.user_id, row.email, row.role, row.merchant_id, row.partner_id), fresh
