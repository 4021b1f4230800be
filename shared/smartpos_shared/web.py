"""Signed-in people in a service's pages (smarttab's dashboard, the console): the service is the browser's backend
— it holds the tokens, the browser only an HttpOnly session cookie. Sign-in goes through device-auth's
authorization code flow with PKCE as the service's public web client (`WebPages.client_id`); the code is redeemed
here, server to server; the access token is renewed with the rotating refresh token when it nears expiry. Sessions
live in Redis under a hash of the cookie's value (one cookie per service: `WebPages.cookie`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import httpx
from fastapi import APIRouter, FastAPI, Query, Request, status
from fastapi.responses import RedirectResponse, Response
from redis.asyncio import Redis
from starlette.requests import HTTPConnection

from .auth import Principal, TokenVerifier
from .errors import DomainError

LOGIN_TTL = 600
RENEW_BEFORE = 30.0


@dataclass(frozen=True)
class WebPages:
    """A service's pages: where they live (`prefix`), the address browsers use (`public_url`), the web client
    registered at device-auth (its redirect URI: `<public_url><prefix>/callback`) and the session cookie."""

    prefix: str
    public_url: str
    client_id: str
    cookie: str
    session_seconds: int

    @property
    def callback_url(self) -> str:
        return f"{self.public_url.rstrip('/')}{self.prefix}/callback"


def pages_of(app: FastAPI) -> WebPages:
    pages: WebPages = app.state.web_pages
    return pages


def _key(pages: WebPages, kind: str, secret: str) -> str:
    return f"web:{pages.cookie}:{kind}:{hashlib.sha256(secret.encode()).hexdigest()}"


def callback_url(app: FastAPI) -> str:
    return pages_of(app).callback_url


async def start(app: FastAPI, next_path: str) -> str:
    """Where to send the browser to sign in: device-auth's page, with a fresh state and PKCE challenge."""
    state, verifier = secrets.token_urlsafe(24), secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    redis: Redis[bytes] = app.state.redis
    pages = pages_of(app)
    await redis.set(_key(pages, "login", state), json.dumps({"verifier": verifier, "next": next_path}), ex=LOGIN_TTL)
    settings = app.state.settings
    query = {"response_type": "code", "client_id": pages.client_id, "redirect_uri": pages.callback_url,
             "code_challenge": challenge, "code_challenge_method": "S256", "state": state}  # fmt: skip
    return f"{settings.auth_issuer.rstrip('/')}/authorize?{urlencode(query)}"


class SignInFailed(Exception):
    pass


async def finish(app: FastAPI, code: str, state: str) -> tuple[str, str]:
    """Redeem the code (once, for the state this server issued): a new session's cookie value, and where to go."""
    redis: Redis[bytes] = app.state.redis
    pages = pages_of(app)
    raw = await redis.getdel(_key(pages, "login", state))
    if raw is None:
        raise SignInFailed("this sign-in expired or was already used")
    login = json.loads(raw)
    form = {"grant_type": "authorization_code", "client_id": pages.client_id, "code": code,
            "redirect_uri": pages.callback_url, "code_verifier": login["verifier"]}  # fmt: skip
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
        if exc.status == 403:  # a role these pages do not serve (merchant staff at the console)
            raise SignInFailed("this account cannot use these pages") from None
        raise SignInFailed(f"the access token does not verify: {exc.detail}") from None


async def _store(app: FastAPI, sid: str, tokens: dict[str, Any], principal: Principal) -> None:
    session = {"access_token": tokens["access_token"], "refresh_token": tokens["refresh_token"],
               "expires_at": time.time() + float(tokens["expires_in"])}  # fmt: skip
    redis: Redis[bytes] = app.state.redis
    pages = pages_of(app)
    await redis.set(_key(pages, "session", sid), json.dumps(session), ex=pages.session_seconds)


async def session_of(connection: HTTPConnection) -> dict[str, Any] | None:
    """The session's tokens (after `principal_of` renewed them), to call another service as the person."""
    pages = pages_of(connection.app)
    sid = connection.cookies.get(pages.cookie)
    if not sid:
        return None
    redis: Redis[bytes] = connection.app.state.redis
    raw = await redis.get(_key(pages, "session", sid))
    return None if raw is None else dict(json.loads(raw))


async def principal_of(connection: HTTPConnection) -> Principal | None:
    """The signed-in person of this request or WebSocket (its session cookie), renewing the access token when it
    nears expiry; None without a live session."""
    app: FastAPI = connection.app
    pages = pages_of(app)
    sid = connection.cookies.get(pages.cookie)
    if not sid:
        return None
    redis: Redis[bytes] = app.state.redis
    raw = await redis.get(_key(pages, "session", sid))
    if raw is None:
        return None
    session = json.loads(raw)
    if session["expires_at"] - time.time() < RENEW_BEFORE:
        form = {"grant_type": "refresh_token", "client_id": pages.client_id,
                "refresh_token": session["refresh_token"]}  # fmt: skip
        try:
            tokens = await _token_request(app, form)
        except SignInFailed:
            await redis.delete(_key(pages, "session", sid))  # refused (revoked, reused, expired): sign in again
            return None
        session = {"access_token": tokens["access_token"], "refresh_token": tokens["refresh_token"],
                   "expires_at": time.time() + float(tokens["expires_in"])}  # fmt: skip
        await redis.set(_key(pages, "session", sid), json.dumps(session), ex=pages.session_seconds)
    try:
        return await _verified(app, session["access_token"])
    except SignInFailed:
        return None


async def end(connection: HTTPConnection) -> None:
    pages = pages_of(connection.app)
    sid = connection.cookies.get(pages.cookie)
    if sid:
        redis: Redis[bytes] = connection.app.state.redis
        await redis.delete(_key(pages, "session", sid))


def csrf_token(connection: HTTPConnection) -> str:
    """The form token of this session (synchronizer pattern): derived from the session cookie, which another site
    can neither read nor send along with a cross-site POST (SameSite=Lax)."""
    sid = connection.cookies.get(pages_of(connection.app).cookie, "")
    return hashlib.sha256(f"csrf:{sid}".encode()).hexdigest()[:32]


def pages_extension(make: Callable[[Any], WebPages]) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    """An app extension: the service's `WebPages` (from its settings) and the HTTP client its sign-in uses."""

    @asynccontextmanager
    async def extension(app: FastAPI) -> AsyncIterator[None]:
        app.state.web_pages = make(app.state.settings)
        async with httpx.AsyncClient(timeout=10.0) as client:
            app.state.web_http = client
            yield

    return extension


def page_headers(public_url: str) -> dict[str, str]:
    """Security headers of every page: scripts, styles and connections from this origin only (and its WebSocket),
    no framing, forms posted here only."""
    origin = urlsplit(public_url)
    ws = f"{'wss' if origin.scheme == 'https' else 'ws'}://{origin.netloc}"
    return {
        "Content-Security-Policy": (
            f"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self' {ws};"
            " form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
        ),
        "X-Frame-Options": "DENY",
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "same-origin",
        "Cache-Control": "no-store",
    }


def safe_next(path: str, prefix: str) -> str:
    """Only a path of these pages (never another site, never `//host`)."""
    ok = path.startswith(prefix) and not path.startswith("//") and "\\" not in path
    return path if ok else prefix


Render = Callable[..., Response]


async def form_of(request: Request) -> dict[str, str]:
    """A page's url-encoded form (small: a few fields); anything else is an empty form (its token then fails)."""
    if request.headers.get("content-type", "").split(";")[0].strip() != "application/x-www-form-urlencoded":
        return {}
    try:
        pairs = parse_qsl((await request.body()).decode(), keep_blank_values=True, max_num_fields=20)
    except (UnicodeDecodeError, ValueError):
        return {}
    return dict(pairs)


def session_router(prefix: str, render: Render) -> APIRouter:
    """`<prefix>/login`, `<prefix>/callback` and `<prefix>/logout` of a service's pages. `render(request,
    template, status, **context)` draws the service's message page."""
    router = APIRouter(prefix=prefix, include_in_schema=False)

    def refused(request: Request, message: str) -> Response:
        return render(request, "message.html", 400, title="Sign-in did not complete", principal=None,
                      message=message, link=f"{prefix}/login", link_text="Sign in again")  # fmt: skip

    @router.get("/login")
    async def login(request: Request, next: Annotated[str, Query(max_length=300)] = prefix) -> Response:
        return RedirectResponse(await start(request.app, safe_next(next, prefix)), status.HTTP_303_SEE_OTHER)

    @router.get("/callback")
    async def callback(
        request: Request,
        code: Annotated[str | None, Query(max_length=200)] = None,
        state: Annotated[str | None, Query(max_length=200)] = None,
        error: Annotated[str | None, Query(max_length=100)] = None,
    ) -> Response:
        if error is not None or not code or not state:
            return refused(request, f"The sign-in was refused ({error or 'no code'}).")
        try:
            sid, next_path = await finish(request.app, code, state)
        except SignInFailed as exc:
            return refused(request, str(exc))
        pages = pages_of(request.app)
        answer = RedirectResponse(safe_next(next_path, prefix), status.HTTP_303_SEE_OTHER)
        answer.set_cookie(pages.cookie, sid, httponly=True, samesite="lax", path="/", max_age=pages.session_seconds,
                          secure=pages.public_url.startswith("https://"))  # fmt: skip
        return answer

    @router.post("/logout")
    async def logout(request: Request) -> Response:
        form = await form_of(request)
        if not hmac.compare_digest(form.get("csrf", ""), csrf_token(request)):
            return render(request, "message.html", 403, title="Not signed out", principal=None,
                          message="This form was not sent from these pages.", link=prefix,
                          link_text="Back")  # fmt: skip
        await end(request)
        # A page of its own, not a redirect to the sign-in page: browsers hold a form's redirects to the page's
        # `form-action 'self'`, and the sign-in page is device-auth's.
        answer = render(request, "message.html", 200, title="Signed out", principal=None,
                        message="You are signed out.", link=f"{prefix}/login", link_text="Sign in again")  # fmt: skip
        answer.delete_cookie(pages_of(request.app).cookie, path="/")
        return answer

    return router
