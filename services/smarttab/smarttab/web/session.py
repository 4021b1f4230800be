"""Signed-in people in smarttab's pages (a backend for the browser: it holds the tokens, the browser only an
HttpOnly session cookie). Sign-in goes through device-auth's authorization code flow with PKCE as the public web
client `SMARTTAB_WEB_CLIENT_ID`; the code is redeemed here, server to server; the access token is renewed with the
rotating refresh token when it nears expiry. Sessions live in Redis under a hash of the cookie's value.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import time
from typing import Any
from urllib.parse import urlencode

import httpx
from fastapi import FastAPI
from redis.asyncio import Redis
from starlette.requests import HTTPConnection

from smartpos_shared.auth import Principal, TokenVerifier
from smartpos_shared.errors import DomainError

COOKIE = "smartpos_session"
LOGIN_TTL = 600
RENEW_BEFORE = 30.0


def _key(kind: str, secret: str) -> str:
    return f"web:{kind}:{hashlib.sha256(secret.encode()).hexdigest()}"


def callback_url(app: FastAPI) -> str:
    return f"{app.state.settings.public_url.rstrip('/')}/dashboard/callback"


async def start(app: FastAPI, next_path: str) -> str:
    """Where to send the browser to sign in: device-auth's page, with a fresh state and PKCE challenge."""
    state, verifier = secrets.token_urlsafe(24), secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    redis: Redis[bytes] = app.state.redis
    await redis.set(_key("login", state), json.dumps({"verifier": verifier, "next": next_path}), ex=LOGIN_TTL)
    settings = app.state.settings
    query = {"response_type": "code", "client_id": settings.web_client_id, "redirect_uri": callback_url(app),
             "code_challenge": challenge, "code_challenge_method": "S256", "state": state}  # fmt: skip
    return f"{settings.auth_issuer.rstrip('/')}/authorize?{urlencode(query)}"


class SignInFailed(Exception):
    pass


async def finish(app: FastAPI, code: str, state: str) -> tuple[str, str]:
    """Redeem the code (once, for the state this server issued): a new session's cookie value, and where to go."""
    redis: Redis[bytes] = app.state.redis
    raw = await redis.getdel(_key("login", state))
    if raw is None:
        raise SignInFailed("this sign-in expired or was already used")
    login = json.loads(raw)
    settings = app.state.settings
    form = {"grant_type": "authorization_code", "client_id": settings.web_client_id, "code": code,
            "redirect_uri": callback_url(app), "code_verifier": login["verifier"]}  # fmt: skip
    tokens = await _token_request(app, form)
    principal = await _verified(app, tokens["access_token"])
    sid = secrets.token_urlsafe(32)
    await _store(app, sid, tokens, principal)
    return sid, login["next"]


async def _token_request(app: FastAPI, form: dict[str, str]) -> dict[str, Any]:
    http: httpx.AsyncClient = app.state.web_http
    try:
        response = await http.post(f"{app.state.settings.auth_issuer.rstrip('/')}/oauth/token", data=form)
    except httpx.HTTPError as exc:
        raise SignInFailed(f"the authorization server does not answer ({type(exc).__name__})") from None
    if response.status_code != 200:
        raise SignInFailed(f"the authorization server refused: {response.json().get('error', response.status_code)}")
    tokens: dict[str, Any] = response.json()
    return tokens


async def _verified(app: FastAPI, access_token: str) -> Principal:
    verifier: TokenVerifier = app.state.token_verifier
    try:
        return await verifier.verify(access_token)
    except DomainError as exc:
        raise SignInFailed(f"the access token does not verify: {exc.detail}") from None


async def _store(app: FastAPI, sid: str, tokens: dict[str, Any], principal: Principal) -> None:
    session = {"access_token": tokens["access_token"], "refresh_token": tokens["refresh_token"],
               "expires_at": time.time() + float(tokens["expires_in"])}  # fmt: skip
    redis: Redis[bytes] = app.state.redis
    await redis.set(_key("session", sid), json.dumps(session), ex=app.state.settings.web_session_seconds)


async def principal_of(connection: HTTPConnection) -> Principal | None:
    """The signed-in person of this request or WebSocket (its session cookie), renewing the access token when it
    nears expiry; None without a live session."""
    sid = connection.cookies.get(COOKIE)
    if not sid:
        return None
    app: FastAPI = connection.app
    redis: Redis[bytes] = app.state.redis
    raw = await redis.get(_key("session", sid))
    if raw is None:
        return None
    session = json.loads(raw)
    if session["expires_at"] - time.time() < RENEW_BEFORE:
        form = {"grant_type": "refresh_token", "client_id": app.state.settings.web_client_id,
                "refresh_token": session["refresh_token"]}  # fmt: skip
        try:
            tokens = await _token_request(app, form)
        except SignInFailed:
            await redis.delete(_key("session", sid))  # refused (revoked, reused, expired): sign in again
            return None
        session = {"access_token": tokens["access_token"], "refresh_token": tokens["refresh_token"],
                   "expires_at": time.time() + float(tokens["expires_in"])}  # fmt: skip
        await redis.set(_key("session", sid), json.dumps(session), ex=app.state.settings.web_session_seconds)
    try:
        return await _verified(app, session["access_token"])
    except SignInFailed:
        return None


async def end(connection: HTTPConnection) -> None:
    sid = connection.cookies.get(COOKIE)
    if sid:
        redis: Redis[bytes] = connection.app.state.redis
        await redis.delete(_key("session", sid))


def csrf_token(connection: HTTPConnection) -> str:
    """The form token of this session (synchronizer pattern): derived from the session cookie, which another site
    can neither read nor send along with a cross-site POST (SameSite=Lax)."""
    sid = connection.cookies.get(COOKIE, "")
    return hashlib.sha256(f"csrf:{sid}".encode()).hexdigest()[:32]
